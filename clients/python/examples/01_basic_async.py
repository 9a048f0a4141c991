import asyncio
from llm_judge_client.lmms import get_binary_judge_response_async

async def evaluate_single():
    result = await get_binary_judge_response_async(
        question="What is 2+2?",
        answer="4",
        prediction="The answer is 4",
        api_type="openai"
    )
    print(f"Result: {result}")

# Run the async function
asyncio.run(evaluate_single())
