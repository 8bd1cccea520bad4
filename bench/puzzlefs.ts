// The CLI from source, for benchmarks that start `puzzlefs` as a separate process.
import { main } from "../src/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
