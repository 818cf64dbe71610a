// placeholder: replaced as llm/ grows
