import asyncio
from llm_judge_client.lmms import HighThroughputEvaluator

async def evaluate_large_dataset():
    # Create a large dataset
    dataset = [
        {
            "question": f"What is {i} + {i}?",
            "answer": str(2 * i),
            "prediction": str(2 * i)
        }
        for i in range(1000)
    ]
    
    # Initialize evaluator with fallback support
    evaluator = HighThroughputEvaluator(
        api_type="openai",
        max_concurrent=50,  # Process 50 items concurrently
        use_fallback=True
    )
    
    # Run evaluation
    results = await evaluator.evaluate_dataset_async(
        dataset,
        eval_type="binary",
        batch_size=100
    )
    
    # Analyze results
    correct = sum(1 for r in results if r.get("result") == 1)
    print(f"Accuracy: {correct}/{len(results)} ({100*correct/len(results):.1f}%)")

asyncio.run(evaluate_large_dataset())
