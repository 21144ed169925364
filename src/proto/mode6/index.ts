/** NTP control messages (mode 6, RFC 9327): the pure codec, reassembly, variable lists and MRU paging. */
export * from './packet.js';
export * from './reassembly.js';
export * from './variables.js';
export * from './status.js';
export * from './peers.js';
export * from './mru.js';
export * from './ordlist.js';
