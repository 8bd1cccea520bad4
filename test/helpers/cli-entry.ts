// The CLI as a process, straight from the TypeScript sources (tests only; bin/puzzlefs.js runs the compiled code).
import { main } from "../../src/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
