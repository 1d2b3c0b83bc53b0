// The entry point of a pool worker process: the master forks this file.

import { runWorker } from './worker.js';

void runWorker();
