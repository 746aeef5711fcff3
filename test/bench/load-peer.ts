/**
 * The submission path's simplest peer, for `bench:load`: express + express.json + one BullMQ
 * `Queue.add` of the body, answering 202 with the job's id. No authentication, validation, limits
 * or ordering: the floor that the API's own work is measured against. Run as a child process:
 * `node load-peer.js <queueName>`; it listens on a free port and sends it to its parent.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const [queueName] = process.argv.slice(2);
const connection = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
const queue = new Queue(queueName, { connection, prefix: '{farm}' });
const app = express();
app.use(express.json({ limit: 1024 * 1024 }));
app.post('/v1/jobs', async (req, res) => {
  const job = await queue.add(req.body.type, req.body);
  res.status(202).json({ id: job.id, status: 'queued' });
});
const server = app.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port));
process.once('SIGTERM', () => {
  server.close();
  void queue.close().then(() => {
    connection.disconnect();
    process.exit(0);
  });
});
