from llm_judge_client.lmms import AsyncSimplifiedJudge

# Anthropic Claude
judge = AsyncSimplifiedJudge(
    api_type="anthropic",
    model_name="claude-3-opus-20240229"
)

# Cohere
judge = AsyncSimplifiedJudge(
    api_type="cohere",
    model_name="command-xlarge"
)

# Together AI
judge = AsyncSimplifiedJudge(
    api_type="together",
    model_name="meta-llama/Llama-2-70b-chat-hf"
)
