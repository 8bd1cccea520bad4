// Runs the CLI from source (tests spawn `node --import tsx test/cli/helpers/cli.ts ARGS`).
import { main } from "../../../src/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
