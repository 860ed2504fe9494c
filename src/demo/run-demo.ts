import { fileURLToPath } from 'node:url';
import { styleText } from 'node:util';
import { main } from '../cli/main.js';
import type { CommandIo } from '../cli/io.js';

/**
 * `npm run demo`: the bundled demo, unattended, explaining as it goes.
 * (Static part: check and plan. The live upgrade joins when the Node.js runtime lands.)
 */
const repo = fileURLToPath(new URL('../..', import.meta.url));
const io: CommandIo = { cwd: repo, stdout: process.stdout, stderr: process.stderr, color: process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined };

const say = (text: string) => process.stdout.write(`\n${io.color ? styleText('bold', `▶ ${text}`) : `▶ ${text}`}\n`);

async function step(title: string, argv: string[]): Promise<void> {
  say(`${title}\n  $ relup ${argv.join(' ')}`);
  const code = await main(argv, io);
  if (code !== 0) throw new Error(`relup ${argv.join(' ')} exited ${code}`);
}

await step('Check every release and appup, planning each declared transition both ways (the CI dry run)', ['check']);
await step('Plan the upgrade of the demo service from 1.2.2 to 1.2.3', ['plan', '1.2.2', '1.2.3']);
await step('Plan the way back', ['plan', '1.2.3', '1.2.2']);
say('Done.');
