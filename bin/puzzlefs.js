#!/usr/bin/env node
// Entry point: the compiled CLI (npm's `prepare` runs `tsc`).
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
