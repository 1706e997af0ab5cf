// @peculiar/x509 for the tests and benchmarks, which use it as an independent X.509 implementation (making
// test CAs, reading what nodecred wrote). nodecred itself reads and writes X.509 with its own DER code
// (x509-read.ts, x509-write.ts): this library held ~8 MiB of an idle daemon's RSS (issue 13). Its ASN.1
// schemas are declared with decorators that read reflect-metadata, which must be loaded before the library;
// importing it from here gets the order right.
import 'reflect-metadata';

export * as x509 from '@peculiar/x509';
