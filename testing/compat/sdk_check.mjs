// Drives a flue_actors gateway with Flue's own client (@flue/sdk) and prints what it saw as one
// JSON object. Usage: node sdk_check.mjs BASE_URL
import { createFlueClient, FlueApiError } from '@flue/sdk';

const client = createFlueClient({ baseUrl: process.argv[2] });
const out = {};

const admitted = await client.workflows.invoke('summarize', { input: { text: 'from the sdk' } });
out.admitted = admitted;

const waited = await client.workflows.invoke('summarize', {
	input: { text: 'waited' },
	wait: 'result',
});
out.waited = waited;

out.record = await client.runs.get(waited.runId);
const events = await client.runs.events(waited.runId);
out.eventTypes = events.map((event) => event.type);
out.eventIndexes = events.map((event) => event.eventIndex);
out.tail = (await client.runs.events(waited.runId, { tail: 2 })).map((event) => event.type);

for (const live of [true, 'sse']) {
	const run = await client.workflows.invoke('summarize', { input: { text: `live ${live}` } });
	const seen = [];
	for await (const event of client.runs.stream(run.runId, { live })) {
		seen.push(event.type);
	}
	out[`stream_${live === true ? 'longpoll' : live}`] = seen;
}

const settled = await client.workflows.run('summarize', {
	input: { text: 'run to the end' },
	onEvent: () => {},
});
out.run = settled;

for (const [label, call] of [
	['unknownWorkflow', () => client.workflows.invoke('no_such_workflow')],
	['badInput', () => client.workflows.invoke('summarize', { input: { nope: 1 } })],
	['unknownRun', () => client.runs.get('run_00000000000000000000000000')],
]) {
	try {
		await call();
		out[label] = { error: null };
	} catch (error) {
		out[label] = {
			isFlueApiError: error instanceof FlueApiError,
			status: error.status,
			type: error.type ?? error.body?.error?.type,
		};
	}
}

process.stdout.write(`${JSON.stringify(out)}\n`);
