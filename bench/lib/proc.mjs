// Peak resident memory of the Chromium processes this Node process started (Linux /proc):
// VmHWM ("high water mark") of each renderer and of the GPU process. The JS heap misses WASM
// memory and GPU buffers; the renderer's peak RSS includes them (and the page's fixed overhead).
import fs from 'node:fs';

function children() {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  return kids;
}

function descendants(root) {
  const kids = children();
  const out = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    for (const c of kids.get(p) || []) { out.push(c); stack.push(c); }
  }
  return out;
}

function kb(status, key) {
  const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : null;
}

/** { rendererPeakRss, gpuPeakRss } in bytes over this process's Chromium descendants (max per type). */
export function chromiumPeaks() {
  let renderer = null;
  let gpu = null;
  for (const pid of descendants(process.pid)) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chromium') && !cmd.includes('chrome')) continue;
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const hwm = kb(status, 'VmHWM');
      if (cmd.includes('--type=renderer')) renderer = Math.max(renderer ?? 0, hwm ?? 0);
      else if (cmd.includes('--type=gpu-process')) gpu = Math.max(gpu ?? 0, hwm ?? 0);
    } catch { /* gone */ }
  }
  return { rendererPeakRss: renderer, gpuPeakRss: gpu };
}

/** Pids of the Chromium browser processes (not their helpers) this Node process started. */
export function chromiumRoots() {
  const out = [];
  for (const pid of children().get(process.pid) || []) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if ((cmd.includes('chromium') || cmd.includes('chrome')) && !cmd.includes('--type=')) out.push(pid);
    } catch { /* gone */ }
  }
  return out;
}
