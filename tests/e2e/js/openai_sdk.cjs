// Drives the gateway with the official OpenAI SDK (npm `openai`, v4) and
// prints one JSON line of what happened, for test_keys.py to check:
// a completion, a stream, a wrong key, and a rate-limited request.
// Env: BASE_URL (…/v1), KEY, BAD_KEY, LIMITED (requests to make until a 429).
const OpenAI = require("openai");

async function main() {
  const out = {};
  const client = new OpenAI({ apiKey: process.env.KEY, baseURL: process.env.BASE_URL, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
  out.completion = { model: r.model, content: r.choices[0].message.content, usage: r.usage.total_tokens };
  const stream = await client.chat.completions.create({
    model: "gpt-4o", stream: true, messages: [{ role: "user", content: "hi" }],
  });
  let chunks = 0;
  for await (const c of stream) if (c.choices[0] && c.choices[0].delta.content) chunks++;
  out.stream_chunks = chunks;

  const bad = new OpenAI({ apiKey: process.env.BAD_KEY, baseURL: process.env.BASE_URL, maxRetries: 0 });
  try {
    await bad.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] });
    out.bad = "no error";
  } catch (e) {
    out.bad = { name: e.constructor.name, status: e.status, code: e.code, auth: e instanceof OpenAI.AuthenticationError };
  }

  for (let i = 0; i < Number(process.env.LIMITED || 0); i++) {
    try {
      const { response } = await client.chat.completions
        .create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
        .withResponse();
      out.remaining = response.headers.get("x-ratelimit-remaining-requests");
    } catch (e) {
      out.limited = { name: e.constructor.name, status: e.status, code: e.code,
                      rate: e instanceof OpenAI.RateLimitError, after: i,
                      retry_after: e.headers && e.headers["retry-after"] };
      break;
    }
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ crashed: String(e) }));
  process.exit(1);
});
