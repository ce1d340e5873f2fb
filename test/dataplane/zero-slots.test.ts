// nonZeroSlots (src/dataplane/table-specs.ts), which reading an array map uses to skip free slots
// a run at a time, finds exactly the slots a byte-by-byte check finds.
import t from 'tap';
import { nonZeroSlots } from '../../src/dataplane/table-specs.js';
import { seeded } from '../model/random-cluster.js';

t.test('the non-zero slots, whatever the slot size, count and where the non-zero byte is', async (t) => {
  const random = seeded(3);
  for (const size of [1, 4, 12, 192]) {
    for (const count of [0, 1, 63, 64, 65, 1000]) {
      const buf = Buffer.alloc(size * count);
      const want: number[] = [];
      for (let i = 0; i < count; i++) {
        if (random() < 0.05 || (count > 0 && i === count - 1 && size === 192)) {
          // Any byte of the slot, its last one included.
          buf[i * size + (random() < 0.3 ? size - 1 : Math.floor(random() * size))] = 1 + Math.floor(random() * 255);
          want.push(i);
        }
      }
      t.same(nonZeroSlots(buf, count, size), want, `size ${size}, ${count} slots, ${want.length} used`);
    }
  }
});
