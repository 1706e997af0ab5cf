// A worker thread running one shard of the simulation (bench/sim/simulate.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { runShard, type ShardRun } from './fleet.ts';

const result = await runShard(workerData as ShardRun);
parentPort!.postMessage(result);
