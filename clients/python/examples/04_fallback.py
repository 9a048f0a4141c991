import asyncio
from llm_judge_client.lmms import evaluate_with_fallback, JudgeRequest

async def eval_with_fallback():
    request = JudgeRequest(
        messages=[{"role": "user", "content": "Evaluate if 2+2=4 is correct"}]
    )
    
    # Will try OpenAI first, then fall back to Anthropic and Together AI
    response = await evaluate_with_fallback(
        request,
        primary_api="openai",
        fallback_apis=["anthropic", "together"]
    )
    print(f"Response: {response.content}")
    print(f"Provider used: {response.model_used}")

asyncio.run(eval_with_fallback())
