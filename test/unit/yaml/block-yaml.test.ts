// nodecred's block YAML reader and writer against the `yaml` library (YAML 1.2, core schema), which reads
// everything the block reader leaves to it: whatever the reader returns must be what the library returns,
// on real files and on generated documents written every way YAML allows. The writer's output must read
// back the same through both. (kubectl, a Go reader, reads the rendered kubeconfigs in
// test/integration/scripts.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { parse } from 'yaml';
import { readBlockYaml } from '../../../src/yaml/block-reader.ts';
import { writeBlockYaml } from '../../../src/yaml/block-writer.ts';

const REPO = resolve(import.meta.dirname, '../../..');

/** The library's reading, or 'error'. */
function library(text: string): unknown {
  try {
    return parse(text, { logLevel: 'error', uniqueKeys: true });
  } catch {
    return 'error';
  }
}

function agrees(text: string): 'ours' | 'library' {
  const ours = readBlockYaml(text);
  if (ours === undefined) return 'library';
  assert.deepEqual(ours, library(text), `the block reader and the library disagree on:\n${text}`);
  return 'ours';
}

const KUBECTL_LAYOUT = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://10.0.0.1:6443
    tls-server-name: kubernetes
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`;

// Hand-written files: indented sequences, comments, quotes, a document marker, CRLF, exec plugins.
const HAND_WRITTEN = [
  `# bootstrap kubeconfig from the image build
---
apiVersion: v1
kind: Config
clusters:
  - name: "prod"   # quoted
    cluster:
      server: 'https://api.prod.example:443'
      certificate-authority: /etc/kubernetes/pki/ca.crt
users:
  - name: tls-bootstrap-token-user
    user:
      token: "abcdef.0123456789abcdef"
contexts:
  - name: bootstrap
    context: {cluster: prod, user: tls-bootstrap-token-user}
current-context: bootstrap
`,
  KUBECTL_LAYOUT.replaceAll('\n', '\r\n'),
  `apiVersion: v1
kind: Config
users:
- name: kubelet
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: /usr/bin/aws-iam-authenticator
      args:
      - token
      - -i
      - my-cluster
      - --region=eu-west-1
      env:
      - name: AWS_PROFILE
        value: "node"
      - name: EMPTY
        value: ""
      interactiveMode: Never
      provideClusterInfo: false
`,
  `apiVersion: nodecred.io/v1alpha1
kind: NodeCredConfiguration
nodeName: worker-1   # the Node's name
healthListen: 127.0.0.1:10271
rotateServerCertificates: true
serverAddresses:
  - 10.0.0.7
  - worker-1.example.internal
logLevel: info
recheckInterval: 5m
hooks:
  command: [systemctl, reload, kubelet]
`,
];

test('kubectl-layout and hand-written kubeconfigs and configs: the block reader agrees with the library', () => {
  assert.equal(agrees(KUBECTL_LAYOUT), 'ours', 'the layout nodecred and kubectl write is read without the library');
  assert.equal(agrees(HAND_WRITTEN[1]!), 'ours', 'CRLF line endings too');
  assert.equal(agrees(HAND_WRITTEN[2]!), 'ours', 'an EKS-style exec kubeconfig too');
  // Flow collections are the library's: the first and last files go to it, and still agree.
  for (const text of HAND_WRITTEN) agrees(text);
});

test('every YAML file in the repository (examples, docs, manifests): the block reader agrees with the library', () => {
  const files = [
    ...yamlFiles(join(REPO, 'docs')),
    ...yamlFiles(join(REPO, 'systemd')),
    ...yamlFiles(join(REPO, 'deploy')),
  ];
  assert.ok(files.length >= 3, `found ${files.length} YAML files`);
  let ours = 0;
  for (const f of files) if (agrees(readFileSync(f, 'utf8')) === 'ours') ours++;
  assert.ok(ours >= 1, 'at least one of them read without the library');
});

function yamlFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return [];
  }
  return entries.filter((e) => /\.ya?ml$/.test(e)).map((e) => join(dir, e));
}

// Scalars chosen to hit every rule: core-schema nulls, booleans and numbers, indicators, comments, quotes,
// colons, non-ASCII, control characters.
const TRICKY = [
  'plain',
  'with space',
  'true',
  'True',
  'TRUE',
  'false',
  'yes',
  'no',
  'on',
  'null',
  'Null',
  'NULL',
  '~',
  '',
  '0',
  '-1',
  '+3',
  '012',
  '0o17',
  '0x1F',
  '0X1F',
  '1e3',
  '1.5',
  '.5',
  '1.',
  '.inf',
  '-.Inf',
  '.nan',
  '1_000',
  '10.0.0.1',
  '127.0.0.1:10250',
  'https://a.example:6443/p?q=1#f',
  'a: b',
  'a:b',
  'a:',
  ':a',
  'a #b',
  'a#b',
  '#a',
  "it's",
  '"q"',
  "'q'",
  '- x',
  '-x',
  '-',
  '? x',
  '?x',
  '[a]',
  '{a}',
  '[]',
  '{}',
  '&a',
  '*a',
  '!t',
  '%x',
  '@x',
  '`x',
  '|',
  '>',
  ' lead',
  'trail ',
  'é',
  '日本',
  '😀',
  'a\tb',
  'a\nb',
  'a\\b',
  '\u0001',
  '\u007f',
  '\u0085',
  '\u2028',
  'x,y',
  '=',
  'a=b',
  '9007199254740993',
  'LS0tLS1CRUdJTiBDRVJU+/=',
];
const KEYS = [
  'a',
  'b',
  'name',
  'apiVersion',
  'certificate-authority-data',
  'x.y',
  'a/b',
  '_k',
  'true',
  'null',
  '1',
  'k k',
];

type Doc = { [k: string]: Value };
type Value = string | number | boolean | null | Value[] | Doc;

const scalarArb: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom(...TRICKY),
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const { doc: docArb } = fc.letrec<{ value: Value; doc: Doc; seq: Value[] }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, scalarArb, tie('doc'), tie('seq')),
  doc: fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 4 }) as fc.Arbitrary<Doc>,
  seq: fc.array(fc.oneof(scalarArb, tie('doc')), { maxLength: 3 }) as fc.Arbitrary<Value[]>,
}));

/** How to write a document: each choice is something YAML allows and the block reader must get right. */
interface Style {
  seqIndent: boolean;
  quote: 'plain' | 'single' | 'double' | 'json';
  comments: boolean;
  spaces: 1 | 3;
  crlf: boolean;
  marker: boolean;
}
const styleArb: fc.Arbitrary<Style> = fc.record({
  seqIndent: fc.boolean(),
  quote: fc.constantFrom('plain', 'single', 'double', 'json'),
  comments: fc.boolean(),
  spaces: fc.constantFrom(1, 3),
  crlf: fc.boolean(),
  marker: fc.boolean(),
});

/** Writes a scalar raw in the chosen style: plain as is (it may not even be valid YAML), or quoted. */
function scalarText(v: Value, s: Style): string {
  if (typeof v !== 'string') return String(v);
  if (s.quote === 'single') return `'${v.replaceAll("'", "''")}'`;
  if (s.quote === 'double') return `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  if (s.quote === 'json') return JSON.stringify(v);
  return v;
}

function docText(d: Doc, s: Style): string {
  const sp = ' '.repeat(s.spaces);
  const comment = s.comments ? ' # note' : '';
  const lines: string[] = s.marker ? ['---'] : [];
  const mapping = (m: Doc, indent: number, firstPrefix?: string) => {
    let first = true;
    for (const [k, v] of Object.entries(m)) {
      const pad = first && firstPrefix !== undefined ? firstPrefix : ' '.repeat(indent);
      first = false;
      if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
        lines.push(`${pad}${k}:${comment}`);
        if (Array.isArray(v)) sequence(v, s.seqIndent ? indent + 2 : indent);
        else mapping(v as Doc, indent + 2);
      } else lines.push(`${pad}${k}:${sp}${inlineText(v, s)}${comment}`);
    }
  };
  const sequence = (items: Value[], indent: number) => {
    for (const item of items) {
      const pad = ' '.repeat(indent);
      if (item !== null && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length > 0) {
        mapping(item as Doc, indent + 2, `${pad}- `);
      } else lines.push(`${pad}-${sp}${inlineText(item, s)}`);
    }
  };
  mapping(d, 0);
  if (s.comments) lines.splice(s.marker ? 1 : 0, 0, '# a comment line', '');
  return `${lines.join(s.crlf ? '\r\n' : '\n')}\n`;
}

function inlineText(v: Value, s: Style): string {
  if (Array.isArray(v)) return '[]';
  if (v !== null && typeof v === 'object') return '{}';
  return scalarText(v, s);
}

test('generated documents written every way: whatever the block reader returns, the library returns too', () => {
  let ours = 0;
  let runs = 0;
  fc.assert(
    fc.property(docArb, styleArb, (d, s) => {
      if (Object.keys(d).length === 0) return;
      runs++;
      if (agrees(docText(d, s)) === 'ours') ours++;
    }),
    { numRuns: 3000, seed: 13 },
  );
  // The check can fail only on documents the reader takes: make sure it takes plenty of them.
  assert.ok(ours > runs / 8, `the block reader took ${ours} of ${runs} documents`);
});

test('mutated real files (a character changed, inserted or removed): the block reader never disagrees', () => {
  const base = [KUBECTL_LAYOUT, ...HAND_WRITTEN];
  const alphabet = [' ', '-', ':', '#', "'", '"', '\\', '\n', '\t', '{', '[', '&', '*', '!', 'a', '0', '|', '>', '.'];
  fc.assert(
    fc.property(
      fc.constantFrom(...base),
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(...alphabet), fc.constantFrom('replace', 'insert', 'delete')), {
        minLength: 1,
        maxLength: 3,
      }),
      (text, edits) => {
        let t = text;
        for (const [at, c, op] of edits) {
          const i = at % (t.length + 1);
          t =
            op === 'insert'
              ? t.slice(0, i) + c + t.slice(i)
              : t.slice(0, i) + (op === 'replace' ? c : '') + t.slice(i + 1);
        }
        agrees(t);
      },
    ),
    { numRuns: 3000, seed: 7 },
  );
});

test('the writer: what it writes reads back the same through the block reader and through the library', () => {
  const writable: fc.Arbitrary<Doc> = docArb.filter((d) => Object.keys(d).length > 0 && !hasBadKey(d));
  fc.assert(
    fc.property(writable, (d) => {
      const text = writeBlockYaml(d);
      const expected = JSON.parse(JSON.stringify(d)) as unknown;
      assert.deepEqual(readBlockYaml(text), expected, `block reader on:\n${text}`);
      assert.deepEqual(parse(text), expected, `library on:\n${text}`);
    }),
    { numRuns: 2000, seed: 5 },
  );
  assert.equal(writeBlockYaml({ s: 'true', n: 1, e: {}, a: [], z: null }), 's: "true"\nn: 1\ne: {}\na: []\nz: null\n');
  // Flags stay plain, as kubectl writes exec args; a dash before a digit or a space is quoted.
  assert.equal(writeBlockYaml({ args: ['-i', '--region', '-1', '- x'] }), 'args:\n- -i\n- --region\n- "-1"\n- "- x"\n');
});

/** Keys the writer refuses (it writes only plain keys that read back as strings). */
function hasBadKey(v: Value): boolean {
  if (Array.isArray(v)) return v.some(hasBadKey);
  if (v === null || typeof v !== 'object') return false;
  return Object.entries(v).some(([k, x]) => ['true', 'null', '1', 'k k'].includes(k) || hasBadKey(x));
}

test('whitespace other than the space (no-break, em, ideographic space): content to YAML, never indentation', () => {
  // JavaScript's trim and \s take these for whitespace; YAML takes only the space (and the tab) for it. A
  // kubeconfig value, or a key's nesting, must not read differently from what the library and kubectl read.
  const docs = [
    'token: abc\u00a0#def\n',
    'server: https://api.example:6443\u2003\n',
    'a:\n\u3000b: 1\n',
    'users:\n- name: a\n  user:\n    token: x\n\u2002\u2002insecure-skip-tls-verify: true\n',
    'a: "x"\u00a0# c\n',
    'a:\u00a0\n',
    'a: b\u202f\n',
  ];
  for (const text of docs) agrees(text);
});

test('deeply nested documents: no stack overflow, and no value where the library has none', () => {
  const nested = (depth: number, line: (i: number) => string) =>
    `${Array.from({ length: depth }, (_, i) => line(i)).join('\n')} 1\n`;
  // The library gives up (an error) somewhere below a thousand levels; the reader must not read one then.
  assert.doesNotThrow(() => agrees(nested(1000, (i) => `${' '.repeat(i)}a:`)));
  // Far deeper: the reader's own recursion; a RangeError would escape into the kubeconfig reader.
  assert.doesNotThrow(() => agrees(`k:\n${nested(3000, (i) => `${' '.repeat(i * 2)}- a:`)}`));
});

test('the writer quotes the strings Go reads as YAML 1.1 booleans (kubectl, the kubelet: sigs.k8s.io/yaml)', () => {
  // Go's YAML 1.1 reads y/yes/on/n/no/off unquoted as booleans, and a kubeconfig string field then fails to
  // load ("cannot unmarshal bool into Go struct field"): an exec argument, an env value, a cluster name.
  for (const word of [
    'y',
    'Y',
    'yes',
    'Yes',
    'YES',
    'n',
    'N',
    'no',
    'No',
    'NO',
    'on',
    'On',
    'ON',
    'off',
    'Off',
    'OFF',
  ]) {
    const text = writeBlockYaml({ name: word });
    assert.equal(text, `name: "${word}"\n`);
    assert.deepEqual(readBlockYaml(text), { name: word });
    assert.deepEqual(parse(text), { name: word });
  }
  assert.equal(writeBlockYaml({ name: 'yes-1' }), 'name: yes-1\n', 'only the exact words');
});
