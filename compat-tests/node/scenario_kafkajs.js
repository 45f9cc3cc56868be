#!/usr/bin/env node
// Client compatibility scenario for kafkajs (pinned in package.json + package-lock.json,
// installed with `npm ci`) against a Kafka broker.
//
// Usage: node scenario_kafkajs.js BOOTSTRAP [--scenario basic|groups]
//             [--phase all|produce|verify|restart-verify|cleanup] [--state FILE]
//
// basic: produce: create_topic (3 partitions, max.message.bytes=10000), produce_timestamps
//   (explicit CreateTime, per partition an uncompressed and a zstd batch), produce_<codec>
//   (keyed records, headers; snappy via kafkajs-snappy, lz4 via kafkajs-lz4, zstd via an
//   adapter over zstd-codec (emscripten build of libzstd)), large_record (9800 bytes),
//   message_too_large (20000 bytes: MESSAGE_TOO_LARGE), idempotent_producer
//   (idempotent: true), admin_describe_topic, admin_create_partitions (2 -> 4),
//   admin_alter_configs (n.a.: kafkajs has only AlterConfigs), admin_alter_configs_legacy,
//   admin_describe_configs. verify: metadata, consume_all, content_*, partition_order,
//   record_timestamps, offsets_for_times, offsets_for_times_compressed, idempotent_log,
//   admin_persisted. cleanup: delete_topic.
// groups: produce: group_create_topic, group_produce; verify: group_join, group_consume,
//   group_commit, group_leave_rebalance, group_resume_after_rebalance, group_list,
//   group_describe, group_commit_before_restart, group_produce_more, group_close;
//   restart-verify: group_committed_after_restart, group_resume_after_restart, group_close;
//   cleanup: group_list_offsets, group_delete, group_delete_topic.
//
// Prints `PASS name`, `FAIL name: why`, `SKIP name: why`; exits non-zero on a failure.
// Environment: COMPAT_REPLICATION_FACTOR = replication factor of the topics it creates (default
// 1; admin_describe_topic expects that many replicas, all in sync).
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const {
  Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes, AssignerProtocol,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const LZ4Codec = require('kafkajs-lz4')
const { ZstdCodec } = require('zstd-codec')

const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
const CT = {
  none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD,
}
const PARTITIONS = 3
const MAX_MESSAGE_BYTES = 10000
const RECORDS_PER_CODEC = 60
const TS_RECORDS = 5
const ADMIN_PARTITIONS = 2
const ADMIN_ADD_PARTITIONS = 4
const GROUP_PARTITIONS = 6
const GROUP_PER_PARTITION = 20
const GROUP_MORE = 10
const GROUP_AFTER_RESTART = 5
const CLIENT_ID = 'compat-kafkajs'
// replication factor of the topics the scenario creates (run.sh --cluster: 3)
const REPLICATION_FACTOR = replicationFactor()

function replicationFactor () {
  const v = process.env.COMPAT_REPLICATION_FACTOR
  if (v === undefined || v === '') return 1
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bad COMPAT_REPLICATION_FACTOR: ${v}`)
    process.exit(2)
  }
  return n
}

// ------------------------------------------------------------------ reporting
let failures = 0
const oneLine = (s) => String(s).split(/\s+/).join(' ').trim()
const ok = (n) => console.log(`PASS ${n}`)
const fail = (n, why) => { failures++; console.log(`FAIL ${n}: ${oneLine(why)}`) }
const skip = (n, why) => console.log(`SKIP ${n}: ${oneLine(why)}`)
const check = (n, probs) => {
  if (probs.length) fail(n, probs.slice(0, 3).join('; ') + (probs.length > 3 ? ` (+${probs.length - 3} more)` : ''))
  else ok(n)
}
const errText = (e) => {
  if (!e) return 'no error'
  let s = `${e.name || 'Error'}${e.type ? ` [${e.type}]` : ''}: ${e.message}`
  if (e.cause) s += ` (cause: ${errText(e.cause)})`
  return s
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const b64 = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const unb64 = (s) => (s === null ? null : Buffer.from(s, 'base64'))
const eq = (a, b) => (a === null || b === null ? a === b : Buffer.compare(a, b) === 0)
async function waitUntil (cond, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) { if (await cond()) return true; await sleep(100) }
  return cond()
}

// ------------------------------------------------------------------ codecs
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
let zstdSimple = null
const zstdReady = new Promise((resolve) => ZstdCodec.run((z) => { zstdSimple = new z.Simple(); resolve() }))
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress (encoder) { await zstdReady; return Buffer.from(zstdSimple.compress(encoder.buffer, 3)) },
  async decompress (buffer) {
    await zstdReady
    const out = zstdSimple.decompress(buffer)
    if (!out) throw new Error('zstd-codec could not decompress')
    return Buffer.from(out)
  },
})

// ------------------------------------------------------------------ clients
let kafka
const admins = []
async function admin () {
  const a = kafka.admin({ retry: { retries: 3 } })
  await a.connect()
  admins.push(a)
  return a
}

async function topicProblem (a, topic, partitions) {
  let md
  try {
    md = await a.fetchTopicMetadata({ topics: [topic] })
  } catch (e) { return `Metadata: ${errText(e)}` }
  const t = md.topics.find((x) => x.name === topic)
  if (!t) return 'topic not in metadata'
  if (t.partitions.length !== partitions) return `${t.partitions.length} partitions, expected ${partitions}`
  const bad = t.partitions.find((p) => p.partitionErrorCode || p.leader < 0)
  if (bad) return `partition ${bad.partitionId}: leader ${bad.leader}, error ${bad.partitionErrorCode}`
  return ''
}

async function waitTopic (a, topic, partitions, ms = 20000) {
  let last = 'no metadata'
  const end = Date.now() + ms
  while (Date.now() < end) {
    last = await topicProblem(a, topic, partitions)
    if (!last) return ''
    await sleep(300)
  }
  return last
}

async function createTopic (a, topic, partitions, configs) {
  try {
    await a.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions, replicationFactor: REPLICATION_FACTOR, configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })) }],
    })
  } catch (e) { return `CreateTopics: ${errText(e)}` }
  const why = await waitTopic(a, topic, partitions)
  return why ? `created, but ${why}` : ''
}

// send in calls of `per` records: kafkajs puts one send's records for a partition in one batch
async function sendAll (producer, topic, codec, group, recs, per = 15) {
  const acked = []; const probs = []
  for (let i = 0; i < recs.length; i += per) {
    const chunk = recs.slice(i, i + per)
    try {
      const res = await producer.send({
        topic, acks: -1, compression: CT[codec === 'timestamps' || codec === 'large' || codec === 'idempotent' ? 'none' : codec] ?? CT.none,
        messages: chunk.map((r) => ({ key: r.key, value: r.value, headers: r.headers, partition: r.partition, timestamp: r.timestamp })),
      })
      const base = {}
      for (const m of res) base[m.partition] = Number(m.baseOffset)
      const idx = {}
      chunk.forEach((r, j) => {
        const k = idx[r.partition] = (idx[r.partition] ?? -1) + 1
        acked.push({
          codec, group: r.group || group, seq: i + j, partition: r.partition, offset: base[r.partition] + k,
          timestamp: r.timestamp ? Number(r.timestamp) : null, key: b64(r.key), value: b64(r.value),
          headers: Object.entries(r.headers || {}).map(([k2, v]) => [k2, Array.isArray(v) ? v.map(b64) : b64(v)]),
        })
      })
    } catch (e) { probs.push(`records ${i}..${i + chunk.length - 1}: ${errText(e)}`) }
  }
  return [acked, probs]
}

function makeRecords (codec, rng) {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']
  const out = []
  for (let i = 0; i < RECORDS_PER_CODEC; i++) {
    const n = 5 + Math.floor(rng() * 55)
    const text = Array.from({ length: n }, () => words[Math.floor(rng() * words.length)]).join(' ')
    let value = Buffer.concat([Buffer.from(`${codec}|${i}|${text}|`), Buffer.from(Array.from({ length: 16 }, () => Math.floor(rng() * 256)))])
    let headers = { codec: Buffer.from(codec), seq: Buffer.from(String(i)) }
    if (i % 10 === 3) headers.empty = Buffer.alloc(0)
    if (i % 10 === 5) headers.seq = [Buffer.from(String(i)), Buffer.from('again')] // a repeated name
    if (i % 10 === 9) headers = {}
    if (i % 15 === 4) value = Buffer.alloc(0)
    if (i % 15 === 11) value = null // tombstone
    out.push({ key: Buffer.from(`key-${codec}-${String(i % 12).padStart(2, '0')}`), value, headers, partition: i % PARTITIONS })
  }
  return out
}

function mulberry (seed) {
  return () => { seed |= 0; seed = seed + 0x6D2B79F5 | 0; let t = Math.imul(seed ^ seed >>> 15, 1 | seed); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296 }
}

// ------------------------------------------------------------------ basic: produce
async function basicProduce (st) {
  const a = await admin()
  const rng = mulberry(7)
  const topic = st.topic
  let why = await createTopic(a, topic, PARTITIONS, { 'max.message.bytes': String(MAX_MESSAGE_BYTES) })
  st.created = !why
  check('create_topic', why ? [why] : [])
  if (why) {
    for (const n of ['produce_timestamps', ...CODECS.map((c) => `produce_${c}`), 'large_record', 'message_too_large']) fail(n, 'topic was not created')
  } else {
    const producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 2 } })
    await producer.connect()
    try {
      const base = Math.floor(Date.now() / 1000) * 1000 - 3600000
      st.ts_base = base
      let probs = []
      for (const [g, codec] of [[0, 'none'], [1, 'zstd']]) {
        const recs = []
        for (let part = 0; part < PARTITIONS; part++) {
          for (let i = 0; i < TS_RECORDS; i++) {
            recs.push({ key: Buffer.from(`ts-${part}-${g}-${i}`), value: Buffer.from(`timestamped ${part}/${g}/${i}`), headers: { kind: Buffer.from('timestamp') }, partition: part, timestamp: String(base + part * 100000 + (g * TS_RECORDS + i) * 1000), group: `ts-${codec}-${part}` })
          }
        }
        try {
          const res = await producer.send({ topic, acks: -1, compression: CT[codec], messages: recs })
          const bases = {}; for (const m of res) bases[m.partition] = Number(m.baseOffset)
          const idx = {}
          recs.forEach((r, j) => {
            const k = idx[r.partition] = (idx[r.partition] ?? -1) + 1
            st.records.push({ codec: 'timestamps', batch_codec: codec, group: r.group, seq: k, partition: r.partition, offset: bases[r.partition] + k, timestamp: Number(r.timestamp), key: b64(r.key), value: b64(r.value), headers: [['kind', b64(r.headers.kind)]] })
          })
        } catch (e) { probs.push(`${codec} batch: ${errText(e)}`) }
      }
      check('produce_timestamps', probs)
      for (const codec of CODECS) {
        const t0 = Date.now()
        const [acked, p2] = await sendAll(producer, topic, codec, codec, makeRecords(codec, rng))
        st.windows[codec] = [t0, Date.now()]
        st.records.push(...acked)
        check(`produce_${codec}`, p2)
      }
      const big = Buffer.from(Array.from({ length: 9800 }, () => Math.floor(rng() * 256)))
      const [acked, p3] = await sendAll(producer, topic, 'large', 'large', [{ key: Buffer.from('large'), value: big, headers: { size: Buffer.from('9800') }, partition: 1 }])
      st.records.push(...acked)
      check('large_record', p3.length ? [`a 9800-byte record (max.message.bytes=${MAX_MESSAGE_BYTES}) was not accepted: ${p3.join('; ')}`] : [])
      try {
        const res = await producer.send({ topic, acks: -1, messages: [{ key: 'too-large', value: Buffer.alloc(20000, 120), partition: 0 }] })
        fail('message_too_large', `a 20000-byte record was accepted: ${JSON.stringify(res)}`)
      } catch (e) {
        const text = errText(e)
        if (/MESSAGE_TOO_LARGE/.test(text) || /too large/i.test(e.message)) { ok('message_too_large'); console.log(`# message_too_large: ${oneLine(text)}`) } else fail('message_too_large', `expected MESSAGE_TOO_LARGE (10), got ${text}`)
      }
    } finally { await producer.disconnect() }
  }

  why = await createTopic(a, st.idem_topic, 2, {})
  st.idem_created = !why
  if (why) fail('idempotent_producer', why)
  else {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
    try {
      await producer.connect()
      const recs = Array.from({ length: 200 }, (_, i) => ({ key: Buffer.from(`idem-${i % 4}`), value: Buffer.from(`idempotent ${i}`), headers: { seq: Buffer.from(String(i)) }, partition: i % 2 }))
      const [acked, probs] = await sendAll(producer, st.idem_topic, 'idempotent', 'idem', recs, 20)
      st.idem_records = acked
      for (const part of [0, 1]) {
        const offs = acked.filter((r) => r.partition === part).map((r) => r.offset)
        if (offs.some((o, i) => i > 0 && o <= offs[i - 1])) probs.push(`partition ${part}: offsets not in produce order`)
      }
      check('idempotent_producer', probs)
    } catch (e) { fail('idempotent_producer', errText(e)) } finally { await producer.disconnect() }
  }
  await adminProduce(a, st)
}

async function describeConfigs (a, topic) {
  const res = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] })
  const r = res.resources[0]
  if (r.errorCode) throw new Error(`DescribeConfigs error ${r.errorCode}: ${r.errorMessage}`)
  const out = {}
  for (const e of r.configEntries) out[e.configName] = [e.configValue, e.isDefault ? 'default' : 'set']
  return out
}

function configProblems (got, want) {
  const probs = []
  for (const [k, v] of Object.entries(want)) {
    if (!(k in got)) probs.push(`${k} missing`)
    else if (got[k][0] !== v) probs.push(`${k}=${got[k][0]}, expected ${v}`)
    else if (got[k][1] === 'default') probs.push(`${k}=${v} reported as a default`)
  }
  return probs
}

async function adminProduce (a, st) {
  const topic = st.admin_topic
  const why = await createTopic(a, topic, ADMIN_PARTITIONS, { 'retention.ms': '3600000' })
  st.admin_created = !why
  if (why) { for (const n of ['admin_describe_topic', 'admin_create_partitions', 'admin_alter_configs_legacy', 'admin_describe_configs']) fail(n, `admin topic: ${why}`); return }
  try {
    const probs = []
    const md = await a.fetchTopicMetadata({ topics: [topic] })
    const t = md.topics[0]
    const { brokers } = await a.describeCluster()
    const ids = brokers.map((b) => b.nodeId)
    if (t.partitions.length !== ADMIN_PARTITIONS) probs.push(`${t.partitions.length} partitions, expected ${ADMIN_PARTITIONS}`)
    for (const p of t.partitions) {
      if (!ids.includes(p.leader)) probs.push(`partition ${p.partitionId}: leader ${p.leader} not in ${ids}`)
      const reps = [...p.replicas].sort((x, y) => x - y)
      const isr = [...p.isr].sort((x, y) => x - y)
      if (reps.length !== REPLICATION_FACTOR || new Set(reps).size !== reps.length || !reps.includes(p.leader) ||
          JSON.stringify(isr) !== JSON.stringify(reps)) {
        probs.push(`partition ${p.partitionId}: replicas ${p.replicas} isr ${p.isr} (expected ${REPLICATION_FACTOR} distinct replicas including the leader, all in sync)`)
      }
    }
    if (!(await a.listTopics()).includes(topic)) probs.push('not in listTopics()')
    check('admin_describe_topic', probs)
  } catch (e) { fail('admin_describe_topic', errText(e)) }
  try {
    await a.createPartitions({ topicPartitions: [{ topic, count: ADMIN_ADD_PARTITIONS }] })
    const w = await waitTopic(a, topic, ADMIN_ADD_PARTITIONS, 15000)
    check('admin_create_partitions', w ? [`CreatePartitions succeeded, but ${w}`] : [])
    st.admin_partitions = w ? ADMIN_PARTITIONS : ADMIN_ADD_PARTITIONS
  } catch (e) { fail('admin_create_partitions', `CreatePartitions ${ADMIN_PARTITIONS} -> ${ADMIN_ADD_PARTITIONS}: ${errText(e)}`) }
  skip('admin_alter_configs', 'kafkajs has no IncrementalAlterConfigs (alterConfigs is AlterConfigs)')
  const want = { 'retention.ms': '7200000', 'max.message.bytes': '20000' }
  try {
    const res = await a.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: Object.entries(want).map(([name, value]) => ({ name, value })) }] })
    const errs = res.resources.filter((r) => r.errorCode)
    if (errs.length) fail('admin_alter_configs_legacy', `AlterConfigs: ${JSON.stringify(errs)}`)
    else { ok('admin_alter_configs_legacy'); st.admin_configs = want }
  } catch (e) { fail('admin_alter_configs_legacy', `AlterConfigs ${JSON.stringify(want)}: ${errText(e)}`) }
  let probs = ['no config']
  const end = Date.now() + 10000
  while (probs.length && Date.now() < end) {
    try {
      const got = await describeConfigs(a, topic)
      probs = configProblems(got, want)
      if (!got['cleanup.policy']) probs.push('default cleanup.policy not listed')
      else if (got['cleanup.policy'][1] !== 'default') probs.push('cleanup.policy not reported as a default')
    } catch (e) { probs = [`DescribeConfigs: ${errText(e)}`] }
    if (probs.length) await sleep(500)
  }
  check('admin_describe_configs', probs)
}

// ------------------------------------------------------------------ basic: verify
// kafkajs consumes only through a group: a fresh group per read, from the beginning
async function consumeAll (a, topic, partitions, ms = 30000) {
  const offs = await a.fetchTopicOffsets(topic)
  const ends = {}; const begins = {}
  for (const o of offs) { ends[o.partition] = Number(o.high); begins[o.partition] = Number(o.low) }
  const got = {}; for (let p = 0; p < partitions; p++) got[p] = []
  const c = kafka.consumer({ groupId: `compat-kafkajs-read-${crypto.randomBytes(4).toString('hex')}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
  await c.connect()
  try {
    await c.subscribe({ topic, fromBeginning: true })
    const done = () => Object.keys(ends).every((p) => (got[p].length ? Number(got[p][got[p].length - 1].offset) + 1 : begins[p]) >= ends[p])
    await c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => { got[partition].push(message) } })
    await waitUntil(done, ms)
  } finally { await c.disconnect() }
  return { got, begins, ends }
}

const headerList = (h) => {
  const out = []
  for (const [k, v] of Object.entries(h || {})) { if (Array.isArray(v)) v.forEach((x) => out.push([k, b64(x)])); else out.push([k, b64(v)]) }
  return out
}
const wantHeaders = (hs) => { const out = []; for (const [k, v] of hs) { if (Array.isArray(v)) v.forEach((x) => out.push([k, x])); else out.push([k, v]) } return out }

async function basicVerify (st) {
  const a = await admin()
  if (!st.created) { fail('metadata', 'topic was not created in the produce phase'); fail('consume_all', 'topic was not created in the produce phase') } else {
    const why = await waitTopic(a, st.topic, PARTITIONS, 30000)
    check('metadata', why ? [why] : [])
    await verifyRecords(a, st)
  }
  if (!st.idem_records || !st.idem_records.length) fail('idempotent_log', 'nothing was produced idempotently in the produce phase')
  else {
    try {
      const { got } = await consumeAll(a, st.idem_topic, 2)
      const probs = []
      for (const p of [0, 1]) {
        const want = st.idem_records.filter((r) => r.partition === p).sort((x, y) => x.seq - y.seq).map((r) => r.value)
        const have = got[p].map((m) => b64(m.value))
        if (JSON.stringify(have) !== JSON.stringify(want)) probs.push(`partition ${p}: ${have.length} records, expected ${want.length} exactly once in order`)
      }
      check('idempotent_log', probs)
    } catch (e) { fail('idempotent_log', errText(e)) }
  }
  if (!st.admin_created) fail('admin_persisted', 'the admin topic was not created in the produce phase')
  else {
    const probs = []
    const w = await waitTopic(a, st.admin_topic, st.admin_partitions || ADMIN_PARTITIONS, 15000)
    if (w) probs.push(w)
    if (st.admin_configs) {
      try { probs.push(...configProblems(await describeConfigs(a, st.admin_topic), st.admin_configs)) } catch (e) { probs.push(`DescribeConfigs: ${errText(e)}`) }
    }
    check('admin_persisted', probs)
  }
}

async function verifyRecords (a, st) {
  const exp = st.records
  let got, begins, ends
  try { ({ got, begins, ends } = await consumeAll(a, st.topic, PARTITIONS)) } catch (e) { fail('consume_all', errText(e)); return }
  let probs = []
  for (let p = 0; p < PARTITIONS; p++) {
    const wantEnd = 1 + Math.max(-1, ...exp.filter((r) => r.partition === p).map((r) => r.offset))
    if (begins[p] !== 0) probs.push(`partition ${p}: earliest offset ${begins[p]}, expected 0`)
    if (ends[p] !== wantEnd) probs.push(`partition ${p}: end offset ${ends[p]}, expected ${wantEnd}`)
    if (got[p].length !== wantEnd) probs.push(`partition ${p}: consumed ${got[p].length} records, expected ${wantEnd}`)
  }
  check('consume_all', probs)
  const by = {}
  for (let p = 0; p < PARTITIONS; p++) for (const m of got[p]) by[`${p}/${m.offset}`] = m
  for (const codec of ['timestamps', ...CODECS, 'large']) {
    const rs = exp.filter((r) => r.codec === codec)
    if (!rs.length) { fail(`content_${codec}`, 'nothing was acknowledged in the produce phase'); continue }
    probs = []
    for (const r of rs) {
      const m = by[`${r.partition}/${r.offset}`]
      const where = `partition ${r.partition} offset ${r.offset}`
      if (!m) { probs.push(`${where}: missing`); continue }
      if (!eq(m.key, unb64(r.key))) probs.push(`${where}: key ${m.key}, expected ${unb64(r.key)}`)
      if (!eq(m.value, unb64(r.value))) probs.push(`${where}: value ${String(m.value).slice(0, 40)}, expected ${String(unb64(r.value)).slice(0, 40)}`)
      const gh = JSON.stringify(headerList(m.headers)); const wh = JSON.stringify(wantHeaders(r.headers))
      if (gh !== wh) probs.push(`${where}: headers ${gh.slice(0, 80)}, expected ${wh.slice(0, 80)}`)
    }
    check(`content_${codec}`, probs)
  }
  probs = []
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = got[p].map((m) => Number(m.offset))
    if (offs.some((o, i) => o !== i)) probs.push(`partition ${p}: offsets not 0..${offs.length - 1} in order`)
    const groups = {}
    for (const r of exp.filter((x) => x.partition === p).sort((x, y) => x.offset - y.offset)) (groups[r.group] = groups[r.group] || []).push(r.seq)
    for (const [g, seqs] of Object.entries(groups)) if (seqs.some((s, i) => i > 0 && s < seqs[i - 1])) probs.push(`partition ${p}: ${g} records out of produce order`)
  }
  check('partition_order', probs)
  probs = []
  for (const r of exp) {
    const m = by[`${r.partition}/${r.offset}`]
    if (!m) continue
    const ts = Number(m.timestamp)
    if (r.codec === 'timestamps') { if (ts !== r.timestamp) probs.push(`partition ${r.partition} offset ${r.offset}: timestamp ${ts}, expected ${r.timestamp}`) } else if (st.windows[r.codec]) {
      const [lo, hi] = st.windows[r.codec]
      if (ts < lo - 1000 || ts > hi + 1000) probs.push(`partition ${r.partition} offset ${r.offset}: timestamp ${ts} outside ${lo}..${hi}`)
    }
  }
  check('record_timestamps', probs)
  await verifyTimes(a, st, got, ends)
}

async function verifyTimes (a, st, got, ends) {
  const tsRecs = st.records.filter((r) => r.codec === 'timestamps')
  if (!tsRecs.length) { fail('offsets_for_times', 'no timestamped records were acknowledged'); fail('offsets_for_times_compressed', 'no timestamped records were acknowledged'); return }
  const plain = []; const compressed = []
  for (let p = 0; p < PARTITIONS; p++) {
    const rs = tsRecs.filter((r) => r.partition === p).sort((x, y) => x.offset - y.offset)
    if (rs.length < 4) continue
    const maxTs = Math.max(...got[p].map((m) => Number(m.timestamp)))
    plain.push([p, rs[0].timestamp - 5000], [p, rs[1].timestamp], [p, rs[2].timestamp - 500], [p, maxTs + 3600000])
    const z = rs.filter((r) => r.batch_codec === 'zstd')
    if (z.length >= 4) compressed.push([p, z[2].timestamp - 500], [p, z[3].timestamp])
    for (const codec of ['gzip', 'snappy', 'lz4']) {
      const cs = got[p].filter((m) => m.headers && m.headers.codec && String(m.headers.codec) === codec)
      if (cs.length >= 4 && Number(cs[3].timestamp) > Number(cs[0].timestamp)) compressed.push([p, Number(cs[3].timestamp)])
    }
  }
  // kafkajs answers "no offset for this timestamp" with the partition's end offset
  const expected = (p, ts) => { const m = got[p].find((x) => Number(x.timestamp) >= ts); return m ? Number(m.offset) : ends[p] }
  for (const [name, asks] of [['offsets_for_times', plain], ['offsets_for_times_compressed', compressed]]) {
    const probs = []
    if (!asks.length) probs.push('nothing to ask')
    for (const [p, ts] of asks) {
      try {
        const res = await a.fetchTopicOffsetsByTimestamp(st.topic, ts)
        const ans = Number(res.find((x) => x.partition === p).offset)
        const want = expected(p, ts)
        if (ans !== want) probs.push(`partition ${p} timestamp ${ts}: offset ${ans}, expected ${want}`)
      } catch (e) { probs.push(`partition ${p} timestamp ${ts}: ${errText(e)}`) }
    }
    check(name, probs)
  }
}

async function deleteTopics (a, topics, name) {
  try { await a.deleteTopics({ topics, timeout: 15000 }) } catch (e) { fail(name, `DeleteTopics ${topics}: ${errText(e)}`); return }
  let left = topics
  await waitUntil(async () => { const all = await a.listTopics(); left = topics.filter((t) => all.includes(t)); return !left.length }, 20000)
  check(name, left.length ? [`deleted, but 20s later still in Metadata: ${left}`] : [])
}

async function basicCleanup (st) {
  const a = await admin()
  const topics = [[st.topic, st.created], [st.idem_topic, st.idem_created], [st.admin_topic, st.admin_created]].filter((x) => x[1]).map((x) => x[0])
  if (!topics.length) { fail('delete_topic', 'no topic was created in the produce phase'); return }
  await deleteTopics(a, topics, 'delete_topic')
}

// ------------------------------------------------------------------ groups
class Member {
  constructor (name, topic, group) {
    this.name = name; this.topic = topic; this.records = []; this.assignment = new Set(); this.started = false; this.errors = []
    this.c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000, rebalanceTimeout: 30000, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
    this.c.on(this.c.events.GROUP_JOIN, (e) => {
      this.assignment = new Set(e.payload.memberAssignment[topic] || [])
      this.memberId = e.payload.memberId
      if (!this.started) this.c.pause([{ topic }])
    })
    this.c.on(this.c.events.CRASH, (e) => this.errors.push(errText(e.payload.error)))
  }

  async run () {
    await this.c.connect()
    await this.c.subscribe({ topic: this.topic, fromBeginning: true })
    await this.c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (!this.started) { this.c.pause([{ topic: this.topic, partitions: [partition] }]); this.c.seek({ topic: this.topic, partition, offset: message.offset }); return }
        this.records.push([partition, Number(message.offset)])
      },
    })
  }

  start () { this.started = true; this.c.resume([{ topic: this.topic }]) }
  positions () {
    // what this member read, per owned partition: last offset + 1
    const pos = {}
    for (const [p, o] of this.records) if (this.assignment.has(p)) pos[p] = Math.max(pos[p] ?? 0, o + 1)
    return pos
  }

  async commit (floor) {
    const pos = this.positions()
    const offsets = [...this.assignment].map((p) => ({ topic: this.topic, partition: p, offset: String(pos[p] ?? floor[p]) }))
    await this.c.commitOffsets(offsets)
    return offsets
  }
}

const assignProblems = (members) => {
  const probs = []
  const all = members.flatMap((m) => [...m.assignment])
  if (members.some((m) => !m.assignment.size)) probs.push('a member has no partitions')
  if (new Set(all).size !== all.length) probs.push('overlapping assignments')
  if (new Set(all).size !== GROUP_PARTITIONS) probs.push(`together ${[...new Set(all)].sort()}`)
  return probs
}
const showAssign = (members) => members.map((m) => `${m.name}: [${[...m.assignment].sort()}]`).join(', ')

async function groupProduce (topic, per, tag) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    const recs = []
    for (let p = 0; p < GROUP_PARTITIONS; p++) for (let i = 0; i < per; i++) recs.push({ key: Buffer.from(`k${p}-${i}`), value: Buffer.from(`${tag}-${p}-${i}`), partition: p })
    const [, probs] = await sendAll(producer, topic, 'none', tag, recs, 60)
    return probs
  } finally { await producer.disconnect() }
}

async function committedOf (a, group, topic) {
  const res = await a.fetchOffsets({ groupId: group, topics: [topic] })
  const out = {}
  for (const p of res[0].partitions) if (Number(p.offset) >= 0) out[p.partition] = Number(p.offset)
  return out
}
const allAt = (n) => Object.fromEntries(Array.from({ length: GROUP_PARTITIONS }, (_, p) => [p, n]))
const same = (x, y) => JSON.stringify(x) === JSON.stringify(y)

async function groupState (a, group) {
  const d = (await a.describeGroups([group])).groups[0]
  return d
}

async function groupsProduce (st) {
  const a = await admin()
  const why = await createTopic(a, st.group_topic, GROUP_PARTITIONS, {})
  st.group_created = !why
  check('group_create_topic', why ? [why] : [])
  if (why) return
  check('group_produce', await groupProduce(st.group_topic, GROUP_PER_PARTITION, 'first'))
}

async function groupsVerify (st) {
  const a = await admin()
  const topic = st.group_topic; const group = st.group
  const members = ['a', 'b', 'c'].map((n) => new Member(n, topic, group))
  try {
    await Promise.all(members.map((m) => m.run()))
    const joined = await waitUntil(() => !assignProblems(members).length, 45000)
    check('group_join', joined ? [] : [`3 members did not share ${GROUP_PARTITIONS} partitions within 45s: ${showAssign(members)} ${members.flatMap((m) => m.errors).join('; ')}`])
    if (!joined) return
    const first = Object.fromEntries(members.map((m) => [m.name, new Set(m.assignment)]))
    members.forEach((m) => m.start())
    const want = GROUP_PARTITIONS * GROUP_PER_PARTITION
    await waitUntil(() => members.reduce((s, m) => s + m.records.length, 0) >= want, 30000)
    let probs = []
    const seen = members.flatMap((m) => m.records.map(([p, o]) => `${p}/${o}`))
    if (seen.length !== want || new Set(seen).size !== want) probs.push(`${seen.length} records (${new Set(seen).size} distinct), expected ${want}`)
    for (const m of members) {
      const stray = [...new Set(m.records.map(([p]) => p))].filter((p) => !first[m.name].has(p))
      if (stray.length) probs.push(`${m.name} read partitions ${stray} it does not own`)
      if (!same([...m.assignment].sort(), [...first[m.name]].sort())) probs.push(`${m.name}: assignment changed to ${[...m.assignment]}`)
    }
    check('group_consume', probs)
    probs = []
    try {
      for (const m of members) await m.commit({})
      const got = await committedOf(a, group, topic)
      if (!same(got, allAt(GROUP_PER_PARTITION))) probs.push(`committed ${JSON.stringify(got)}, expected ${GROUP_PER_PARTITION} on every partition`)
    } catch (e) { probs.push(`commitOffsets: ${errText(e)}`) }
    check('group_commit', probs)
    const c = members.pop()
    await c.c.disconnect()
    const rebalanced = await waitUntil(() => !assignProblems(members).length, 45000)
    check('group_leave_rebalance', rebalanced ? [] : [`after c left, the other two did not take all partitions within 45s: ${showAssign(members)}`])
    const before = Object.fromEntries(members.map((m) => [m.name, m.records.length]))
    probs = await groupProduce(topic, GROUP_MORE, 'more')
    const total = GROUP_PARTITIONS * GROUP_MORE
    await waitUntil(() => members.reduce((s, m) => s + m.records.length - before[m.name], 0) >= total, 30000)
    await sleep(500)
    const fresh = members.flatMap((m) => m.records.slice(before[m.name]).map(([p, o]) => `${p}/${o}`)).sort()
    const wantSet = []; for (let p = 0; p < GROUP_PARTITIONS; p++) for (let o = GROUP_PER_PARTITION; o < GROUP_PER_PARTITION + GROUP_MORE; o++) wantSet.push(`${p}/${o}`)
    if (!same(fresh, wantSet.sort())) probs.push(`read ${fresh.length} records after the rebalance, expected exactly the ${total} new ones (e.g. ${fresh.filter((x) => !wantSet.includes(x)).slice(0, 3)})`)
    check('group_resume_after_rebalance', probs)
    try {
      const listed = (await a.listGroups()).groups.filter((g) => g.groupId === group)
      const d = await groupState(a, group)
      probs = []
      if (!listed.length) probs.push('group not in listGroups()')
      if (d.state !== 'Stable') probs.push(`state ${d.state}, expected Stable`)
      check('group_list', probs)
      probs = []
      if (d.protocolType !== 'consumer') probs.push(`protocol type ${d.protocolType}`)
      if (d.protocol !== 'RoundRobinAssigner') probs.push(`protocol ${d.protocol}, expected RoundRobinAssigner (kafkajs' default)`)
      if (d.members.length !== 2) probs.push(`${d.members.length} members, expected 2`)
      const assigned = []
      for (const mem of d.members) {
        const dec = AssignerProtocol.MemberAssignment.decode(mem.memberAssignment)
        assigned.push(...((dec && dec.assignment[topic]) || []))
        if (mem.clientId !== CLIENT_ID) probs.push(`client id ${mem.clientId}`)
      }
      if (!same(assigned.sort((x, y) => x - y), [0, 1, 2, 3, 4, 5])) probs.push(`member assignments cover ${assigned}`)
      const ids = members.map((m) => m.memberId).sort()
      if (!same(d.members.map((m) => m.memberId).sort(), ids)) probs.push('member ids differ from what the consumers were given')
      check('group_describe', probs)
    } catch (e) { fail('group_list', errText(e)); fail('group_describe', errText(e)) }
    probs = []
    try {
      for (const m of members) await m.commit({})
      const got = await committedOf(a, group, topic)
      if (!same(got, allAt(GROUP_PER_PARTITION + GROUP_MORE))) probs.push(`committed ${JSON.stringify(got)}, expected ${GROUP_PER_PARTITION + GROUP_MORE} everywhere`)
    } catch (e) { probs.push(`commitOffsets: ${errText(e)}`) }
    check('group_commit_before_restart', probs)
    check('group_produce_more', await groupProduce(topic, GROUP_AFTER_RESTART, 'after'))
    probs = []
    for (const m of members) { try { await m.c.disconnect() } catch (e) { probs.push(`${m.name}.disconnect(): ${errText(e)}`) } }
    members.length = 0
    let state = ''
    if (!(await waitUntil(async () => { state = (await groupState(a, group)).state; return state === 'Empty' }, 15000))) probs.push(`group state ${state}, expected Empty`)
    check('group_close', probs)
  } finally { for (const m of members) await m.c.disconnect().catch(() => {}) }
}

async function groupsRestartVerify (st) {
  const a = await admin()
  const topic = st.group_topic; const group = st.group
  const base = GROUP_PER_PARTITION + GROUP_MORE
  const why = await waitTopic(a, topic, GROUP_PARTITIONS, 30000)
  try {
    const got = await committedOf(a, group, topic)
    check('group_committed_after_restart', [...(why ? [why] : []), ...(same(got, allAt(base)) ? [] : [`committed ${JSON.stringify(got)}, expected ${base} everywhere`])])
  } catch (e) { fail('group_committed_after_restart', errText(e)) }
  const d = new Member('d', topic, group)
  d.started = true
  try {
    await d.run()
    const total = GROUP_PARTITIONS * GROUP_AFTER_RESTART
    await waitUntil(() => d.records.length >= total, 45000)
    await sleep(500)
    const got = d.records.map(([p, o]) => `${p}/${o}`).sort()
    const want = []; for (let p = 0; p < GROUP_PARTITIONS; p++) for (let o = base; o < base + GROUP_AFTER_RESTART; o++) want.push(`${p}/${o}`)
    check('group_resume_after_restart', same(got, want.sort()) ? [] : [`read ${got.length} records (first ${got.slice(0, 2)}), expected exactly the ${total} at offsets ${base}.. ${d.errors.join('; ')}`])
    const probs = []
    try { await d.commit(allAt(base)); await d.c.disconnect() } catch (e) { probs.push(errText(e)) }
    check('group_close', probs)
  } finally { await d.c.disconnect().catch(() => {}) }
}

async function groupsCleanup (st) {
  const a = await admin()
  const topic = st.group_topic; const group = st.group
  const want = allAt(GROUP_PER_PARTITION + GROUP_MORE + GROUP_AFTER_RESTART)
  try {
    const got = await committedOf(a, group, topic)
    check('group_list_offsets', same(got, want) ? [] : [`committed ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`])
  } catch (e) { fail('group_list_offsets', errText(e)) }
  try {
    await a.deleteGroups([group])
    const probs = []
    if ((await a.listGroups()).groups.some((g) => g.groupId === group)) probs.push('still listed')
    const left = await committedOf(a, group, topic)
    if (Object.keys(left).length) probs.push(`offsets still there: ${JSON.stringify(left)}`)
    check('group_delete', probs)
  } catch (e) { fail('group_delete', errText(e)) }
  if (st.group_created) await deleteTopics(a, [topic], 'group_delete_topic')
  else fail('group_delete_topic', 'topic was not created in the produce phase')
}

// ------------------------------------------------------------------ main
async function main () {
  const args = process.argv.slice(2)
  const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def }
  const bootstrap = args[0]
  const scenario = opt('--scenario', 'basic'); const phase = opt('--phase', 'all'); const stateFile = opt('--state', null)
  kafka = new Kafka({ clientId: CLIENT_ID, brokers: bootstrap.split(','), logLevel: logLevel.ERROR, connectionTimeout: 10000, requestTimeout: 30000, retry: { retries: 5 } })
  let st = null
  if (stateFile && fs.existsSync(stateFile) && phase !== 'all' && phase !== 'produce') st = JSON.parse(fs.readFileSync(stateFile))
  if (!st) {
    const sfx = crypto.randomBytes(4).toString('hex')
    st = { topic: `compat-kjs-${sfx}`, idem_topic: `compat-kjs-idem-${sfx}`, admin_topic: `compat-kjs-admin-${sfx}`, group_topic: `compat-kjs-group-${sfx}`, group: `compat-kjs-group-${sfx}`, records: [], windows: {}, idem_records: [] }
  }
  const phases = scenario === 'groups'
    ? { produce: groupsProduce, verify: groupsVerify, 'restart-verify': groupsRestartVerify, cleanup: groupsCleanup }
    : { produce: basicProduce, verify: basicVerify, 'restart-verify': basicVerify, cleanup: basicCleanup }
  for (const ph of phase === 'all' ? ['produce', 'verify', 'restart-verify', 'cleanup'] : [phase]) {
    try { await phases[ph](st) } catch (e) { console.error(e); fail(`${ph}_phase`, `scenario crashed: ${errText(e)}`) }
    while (admins.length) await admins.pop().disconnect().catch(() => {})
    if (stateFile) fs.writeFileSync(stateFile, JSON.stringify(st))
  }
  process.exit(failures ? 1 : 0)
}

main()
