import { spawn } from "node:child_process";
spawn("ls");
