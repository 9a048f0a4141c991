"""Client tokens are tenants, as seen through the client package: another token's job is not
found, lists show one's own, an idempotency key is one's own; an admin token sees everything."""

from typing import Iterator

import pytest

from llm_judge_client import Client, NotFoundError

from conftest import Server

ALICE = "tenant-alice-token"
BOB = "tenant-bob-token"
ADMIN = "tenant-admin-token"

ITEMS = [{"question": "2+2?", "answer": "4", "prediction": "4"}]


@pytest.fixture(scope="module")
def tenants_server() -> Iterator[Server]:
    s = Server(
        {"LLM_JUDGE__AUTH__TOKENS": f"{ALICE},{BOB}", "LLM_JUDGE__AUTH__ADMIN_TOKENS": ADMIN},
        None,
    )
    yield s
    s.stop()


def test_a_job_belongs_to_the_token_that_made_it(tenants_server: Server) -> None:
    url = tenants_server.url
    with Client(url, ALICE) as alice, Client(url, BOB) as bob, Client(url, ADMIN) as admin:
        job = alice.submit_job(ITEMS, idempotency_key="shared-key")
        assert alice.wait(job.id, timeout=30).status == "completed"
        with pytest.raises(NotFoundError):
            bob.job(job.id)
        with pytest.raises(NotFoundError):
            bob.cancel(job.id)
        with pytest.raises(NotFoundError):
            list(bob.results(job.id))
        assert job.id not in [j.id for j in bob.jobs()]
        assert job.id in [j.id for j in alice.jobs()]
        # The same key from bob makes bob's own job.
        bobs = bob.submit_job(ITEMS, idempotency_key="shared-key")
        assert bobs.id != job.id
        seen = [j.id for j in admin.jobs()]
        assert job.id in seen and bobs.id in seen
        assert admin.job(bobs.id).id == bobs.id
