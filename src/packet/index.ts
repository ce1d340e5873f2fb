// Packet builder/parser for tests and benchmarks: Ethernet, IPv4, IPv6, TCP, UDP, ICMP with checksums.
export * from './checksum.js';
export * from './ethernet.js';
export * from './ipv4.js';
export * from './tcp.js';
export * from './udp.js';
export * from './icmp.js';
export * from './frame.js';
export * from './ipv6.js';
