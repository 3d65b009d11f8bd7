// Entry: take the token from the URL `qnet manager` printed, learn its role, render the frame.
import { render } from 'preact';
import { ApiError, forgetToken, session, takeToken, useToken } from './api.js';
import { App } from './app.js';
import { Problems } from './components/problems.js';

const root = document.getElementById('app')!;

function NoToken({ why }: { why?: ApiError }) {
  return (
    <main class="login">
      <h1>qnet manager</h1>
      {why ? <Problems items={why.diagnostics} /> : null}
      <p>
        Open the address <code>qnet manager</code> prints (add <code>--editor</code> to change the policy). It carries this page's token after
        the <code>#</code>, which never leaves your browser.
      </p>
    </main>
  );
}

async function start(): Promise<void> {
  const token = takeToken();
  if (!token) return render(<NoToken />, root);
  useToken(token);
  try {
    const s = await session();
    render(<App role={s.role} />, root);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) forgetToken();
    render(<NoToken why={e instanceof ApiError ? e : new ApiError(0, [{ code: 'UI', message: String(e) }])} />, root);
  }
}

void start();
