/** Runs one registered looptune command in this process and returns the lines it printed with console.log. */
import { Command } from 'commander';

export async function runCommand(register: (program: Command) => void, args: readonly string[]): Promise<string[]> {
  const program = new Command().exitOverride();
  register(program);
  const printed: string[] = [];
  const log = console.log;
  console.log = (line: string) => printed.push(line);
  try {
    await program.parseAsync(['node', 'looptune', ...args]);
  } finally {
    console.log = log;
  }
  return printed;
}
