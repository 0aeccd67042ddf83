/** The program: runs the CLI on this process's arguments (bin/looptune.js and the device bundle start here). */
import { main } from './index.ts';

await main();
