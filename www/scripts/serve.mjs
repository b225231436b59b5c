// `make serve`: serve the demo for a real browser (WebGPU needs a secure context: localhost is one).
import { startServer } from './server.mjs';

const port = Number(process.env.PORT || 8080);
const { url } = await startServer({ port, host: '127.0.0.1' });
console.log(`mnemo demo: open ${url}/ in a WebGPU-capable browser (Chrome/Edge 113+, Safari 26+, Firefox 141+). Ctrl-C to stop.`);
