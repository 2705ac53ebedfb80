"""The official `openai` Python client paying from a computing socket.

python openai_socket.py BASE_URL SOCKET_KEY EMBED_MODEL

Prints one JSON object: the embeddings' sizes, the node that served them and what
the call took from the socket (the x-emc-charge header, in wei).
"""
import json
import sys

from openai import OpenAI

base, key, model = sys.argv[1:4]
client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
raw = client.embeddings.with_raw_response.create(model=model, input="a socket pays for this")
emb = raw.parse()
print(json.dumps({
    "embeddings": [len(d.embedding) for d in emb.data],
    "node": raw.headers.get("x-emc-node"),
    "charge": raw.headers.get("x-emc-charge"),
    "tokens": emb.usage.prompt_tokens,
}))
