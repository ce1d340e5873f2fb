// Child of interfaces.test.ts, started in a test namespace with `nsenter --net` and no fresh
// sysfs: prints the links the InterfaceWatcher saw and what /sys/class/net lists, as one JSON line.
import { readdirSync } from 'node:fs';
import pino from 'pino';
import { InterfaceWatcher } from '../../src/agent/interfaces.js';

const watcher = new InterfaceWatcher({ patterns: ['*'], logger: pino({ level: 'silent' }), useMonitor: false, rescanPeriodMs: 60_000, onAdded: () => {} });
await watcher.start();
watcher.stop();
process.stdout.write(JSON.stringify({ watcher: watcher.current(), sysfs: readdirSync('/sys/class/net') }) + '\n');
