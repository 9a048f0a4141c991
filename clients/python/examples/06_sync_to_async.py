from llm_judge_client.lmms import run_async_evaluation, get_binary_judge_response

# The original snippet uses a `dataset` defined earlier; a small one so that it runs.
dataset = [
    {"question": "What is 2+2?", "answer": "4", "prediction": "4"},
    {"question": "What is the capital of France?", "answer": "Paris", "prediction": "Paris"},
]

# Existing synchronous code
def evaluate_sync(dataset):
    results = []
    for item in dataset:
        result = get_binary_judge_response(
            item["question"],
            item["answer"],
            item["prediction"]
        )
        results.append(result)
    return results

# Convert to async
async def evaluate_async(dataset):
    from llm_judge_client.lmms import AsyncSimplifiedJudge
    
    judge = AsyncSimplifiedJudge(max_concurrent=20)
    results = await judge.evaluate_binary_batch_async(
        [item["question"] for item in dataset],
        [item["answer"] for item in dataset],
        [item["prediction"] for item in dataset]
    )
    return results

# Run async version in sync code
results = run_async_evaluation(evaluate_async(dataset))
