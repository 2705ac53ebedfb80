"""The official `openai` Python client against an EMC gateway.

python openai_client.py BASE_URL API_KEY EMBED_MODEL CHAT_MODEL

Prints one JSON object: the embeddings' sizes and the node that served them, the
streamed chat's chunks and text, and a non-streamed chat's usage and node.
"""
import json
import sys

from openai import OpenAI

base, key, embed_model, chat_model = sys.argv[1:5]
client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)

raw = client.embeddings.with_raw_response.create(model=embed_model, input=["hello", "edge compute"])
emb = raw.parse()
out = {
    "embeddings": [len(d.embedding) for d in emb.data],
    "embed_node": raw.headers.get("x-emc-node"),
    "embed_charge": raw.headers.get("x-emc-charge"),
}

chunks, text = 0, ""
stream = client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "Name a colour."}],
    max_tokens=12,
    stream=True,
)
for chunk in stream:
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
out["stream_chunks"] = chunks
out["stream_text"] = text

raw = client.chat.completions.with_raw_response.create(
    model=chat_model,
    messages=[{"role": "user", "content": "Say yes."}],
    max_tokens=8,
)
chat = raw.parse()
out["chat_tokens"] = chat.usage.completion_tokens if chat.usage else None
out["chat_text"] = chat.choices[0].message.content
out["chat_node"] = raw.headers.get("x-emc-node")

models = client.models.list()
out["models"] = sorted(m.id for m in models.data)

try:
    client.embeddings.create(model="no-such-model", input="x")
    out["unknown_model"] = "accepted"
except Exception as e:  # the client raises its NotFoundError with our message
    out["unknown_model"] = f"{type(e).__name__}: {e}"

print(json.dumps(out))
