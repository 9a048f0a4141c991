import asyncio
from llm_judge_client.lmms import AsyncSimplifiedJudge

async def evaluate_batch():
    judge = AsyncSimplifiedJudge(
        api_type="openai",
        model_name="gpt-4o-2024-08-06",
        max_concurrent=20  # Process 20 items concurrently
    )
    
    questions = ["What is 2+2?", "What is 3+3?", "What is 4+4?"]
    answers = ["4", "6", "8"]
    predictions = ["4", "6", "8"]
    
    results = await judge.evaluate_binary_batch_async(
        questions, answers, predictions
    )
    
    for i, result in enumerate(results):
        print(f"Question {i+1}: {result['result']}")

asyncio.run(evaluate_batch())
