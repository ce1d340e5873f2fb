// The kernel matrix's host side without a VM: reading the guest's result line out of a serial
// console (kernel noise, carriage returns, a fatal report) and comparing kernel versions.
import t from 'tap';
import { consoleTail, kernelVersion, parseGuestResult } from '../../src/testbed/kernel-matrix/host.js';
import { RESULT_MARK } from '../../src/testbed/kernel-matrix/guest.js';

t.test('the result line is found among console noise', async (t) => {
  const result = { release: '5.10.0-32-cloud-amd64', objects: { 'tc.bpf.o': { loaded: true } } };
  const consoleText = `[    0.1] Linux version 5.10.0\r\nmatrix: starting the check\r\n\r\n${RESULT_MARK}${JSON.stringify(result)}\r\nmatrix: check exited with 0\r\n[  225.4] reboot: Power down\r\n`;
  t.match(parseGuestResult(consoleText), result);
  t.equal(parseGuestResult('[ 0.06] Kernel panic - not syncing: IO-APIC + timer doesn\'t work!\n'), null, 'no line: null');
  t.match(parseGuestResult(`${RESULT_MARK}{"release":"6.1.0","fatal":"Error: boom"}\n`), { fatal: 'Error: boom' }, 'a fatal report');
  t.throws(() => parseGuestResult(`${RESULT_MARK}{"release":\n`), 'a cut line is an error, not a result');
  t.equal(consoleTail('a\nb\nc', 2), 'b\nc');
});

t.test('kernel versions compare as major.minor', async (t) => {
  t.equal(kernelVersion('5.10.0-32-cloud-amd64'), 510);
  t.equal(kernelVersion('6.12.117+deb13-cloud-amd64'), 612);
  t.ok(kernelVersion('6.1.0-50-cloud-amd64') < kernelVersion('6.5.0'), '6.1 < 6.5');
  t.ok(kernelVersion('5.18.0') >= 518);
  t.throws(() => kernelVersion('linux'), /not a kernel release/);
});
