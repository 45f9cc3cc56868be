package compat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

/**
 * Client compatibility scenario for the Java client (org.apache.kafka:kafka-clients).
 *
 * <pre>
 * java -jar compat-java.jar BOOTSTRAP [all|produce|verify|cleanup] [STATE_DIR]
 * </pre>
 *
 * produce: AdminClient creates two topics (main: 3 partitions, max.message.bytes=10000;
 * admin: 1 partition, then grown to 3), alters and describes configs; default (idempotent,
 * acks=all) producers write timestamped batches and keyed records with headers in every
 * codec, a record near max.message.bytes, one above it and one after it. verify (run before
 * and after a broker restart): metadata, configs, every record with key / value / headers /
 * timestamp, per-partition order, offsets by timestamp. cleanup: delete the topics.
 * The consumer-group scenario is {@link GroupsScenario}. Prints PASS / FAIL / SKIP lines;
 * exits 1 if a check failed.
 */
public final class JavaScenario extends Base {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final int MAX_MESSAGE_BYTES = 10000;
    static final int RECORDS_PER_CODEC = 60;
    static final int MAIN_PARTITIONS = 3;
    static final int LARGE_VALUE_BYTES = 9800;    // batch ~9.9 KB: just under max.message.bytes
    static final int TOO_LARGE_VALUE_BYTES = 20000;

    JavaScenario(String bootstrap, Path stateDir) {
        super(bootstrap, stateDir);
    }

    @Override
    String stateName() {
        return "java";
    }

    String adminTopic() {
        return st.getProperty("admin_topic");
    }

    public static void main(String[] args) throws Exception {
        String[] a = phaseArgs(args, "JavaScenario", "all|produce|verify|cleanup");
        JavaScenario s = new JavaScenario(a[0], Path.of(a[2]));
        switch (a[1]) {
            case "all" -> { s.produce(); s.verify(); s.cleanup(); }
            case "produce" -> s.produce();
            case "verify" -> s.verify();
            case "cleanup" -> s.cleanup();
            default -> { System.err.println("bad phase: " + a[1]); System.exit(2); }
        }
        s.exit();
    }

    // ------------------------------------------------------------------ produce

    void produce() throws Exception {
        String run = "compat-java-" + (System.currentTimeMillis() / 1000) + "-" + new Random().nextInt(100000);
        st.setProperty("topic", run);
        st.setProperty("admin_topic", run + "-admin");
        saveState();
        Files.deleteIfExists(expectedPath());
        out.println("# topic " + run);

        List<Rec> expected = new ArrayList<>();
        try (Admin admin = admin()) {
            topicAdmin(admin);
        }
        saveState();

        Map<String, String> pids = new LinkedHashMap<>();
        produceTimestamps(expected, pids);
        for (String codec : CODECS) produceCodec(codec, expected, pids);
        produceLarge(expected, pids);
        for (int i = 0; i < expected.size(); i++) expected.get(i).seq = i;
        saveExpected(expected);
        saveState();

        // every producer above used the defaults: enable.idempotence=true, acks=all
        List<String> bad = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        for (Map.Entry<String, String> e : pids.entrySet()) {
            String v = e.getValue();
            if (!v.matches("\\d+/\\d+")) bad.add(e.getKey() + " has " + v);
            else if (!ids.add(v.substring(0, v.indexOf('/')))) bad.add(e.getKey() + " reuses producer id " + v);
        }
        if (pids.isEmpty()) {
            fail("idempotent_producer", "no producer ran");
        } else if (bad.isEmpty()) {
            pass("idempotent_producer", "producer id/epoch: " + pids);
        } else {
            fail("idempotent_producer", "expected a distinct producer id >= 0 from InitProducerId per producer: "
                + String.join("; ", bad));
        }
    }

    void topicAdmin(Admin admin) throws Exception {
        String topic = topic();
        Map<String, KafkaFuture<Void>> fs = admin.createTopics(List.of(
            new NewTopic(topic, MAIN_PARTITIONS, REPLICATION_FACTOR)
                .configs(Map.of("max.message.bytes", String.valueOf(MAX_MESSAGE_BYTES))),
            new NewTopic(adminTopic(), 1, REPLICATION_FACTOR))).values();
        Map<String, String> createErr = new HashMap<>();
        for (Map.Entry<String, KafkaFuture<Void>> e : fs.entrySet()) {
            try {
                get(e.getValue());
                st.setProperty("created." + e.getKey(), "true");
            } catch (Exception ex) {
                createErr.put(e.getKey(), why(ex));
            }
        }
        saveState();

        // -- create_topic: CreateTopics, then the topic shows up with a leader for each partition
        if (createErr.containsKey(topic)) {
            fail("create_topic", "CreateTopics " + topic + ": " + createErr.get(topic));
        } else {
            String err = waitFor(20000, () -> {
                try {
                    return checkTopic(admin, topic, MAIN_PARTITIONS);
                } catch (Exception e) {
                    return why(e);
                }
            });
            if (err == null) pass("create_topic");
            else fail("create_topic", "created, but describeTopics 20s later: " + err);
        }

        // -- describe_topic: all three topics listed and described (ids, leaders, replicas, ISR)
        try {
            List<String> problems = new ArrayList<>();
            Set<String> names = get(admin.listTopics().names());
            Map<String, Integer> want = new LinkedHashMap<>();
            want.put(topic, MAIN_PARTITIONS);
            want.put(adminTopic(), 1);
            for (Map.Entry<String, Integer> w : want.entrySet()) {
                if (createErr.containsKey(w.getKey())) {
                    problems.add("CreateTopics " + w.getKey() + ": " + createErr.get(w.getKey()));
                    continue;
                }
                if (!names.contains(w.getKey())) problems.add("listTopics lacks " + w.getKey());
                String e = waitFor(10000, () -> {
                    try {
                        return checkTopic(admin, w.getKey(), w.getValue());
                    } catch (Exception ex) {
                        return why(ex);
                    }
                });
                if (e != null) problems.add(e);
            }
            if (problems.isEmpty()) pass("admin_describe_topic");
            else fail("admin_describe_topic", String.join("; ", problems));
        } catch (Exception e) {
            fail("admin_describe_topic", why(e));
        }

        // -- create_partitions: the admin topic grows from 1 to 3 partitions
        if (createErr.containsKey(adminTopic())) {
            fail("admin_create_partitions", "CreateTopics " + adminTopic() + ": " + createErr.get(adminTopic()));
        } else {
            try {
                get(admin.createPartitions(Map.of(adminTopic(), NewPartitions.increaseTo(3))).all());
                String e = waitFor(15000, () -> {
                    try {
                        return checkTopic(admin, adminTopic(), 3);
                    } catch (Exception ex) {
                        return why(ex);
                    }
                });
                if (e == null) pass("admin_create_partitions");
                else fail("admin_create_partitions", "CreatePartitions to 3 succeeded, but 15s later: " + e);
            } catch (Exception e) {
                fail("admin_create_partitions", "CreatePartitions " + adminTopic() + " to 3: " + why(e));
            }
        }

        // -- alter_configs: IncrementalAlterConfigs SET retention.ms (max.message.bytes must stay)
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try {
            get(admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "86400000"), AlterConfigOp.OpType.SET)))).all());
            pass("admin_alter_configs");
        } catch (Exception e) {
            fail("admin_alter_configs", "IncrementalAlterConfigs retention.ms=86400000: " + why(e));
        }
        describeConfigs(admin, "admin_describe_configs");
    }

    void describeConfigs(Admin admin, String name) {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic());
        try {
            Config c = get(admin.describeConfigs(List.of(res)).all()).get(res);
            List<String> problems = new ArrayList<>();
            expectConfig(c, "max.message.bytes", String.valueOf(MAX_MESSAGE_BYTES), problems);
            expectConfig(c, "retention.ms", "86400000", problems);
            ConfigEntry cp = c.get("cleanup.policy");
            if (cp == null) problems.add("no cleanup.policy entry (defaults are not described)");
            else if (!"delete".equals(cp.value())) problems.add("cleanup.policy=" + cp.value() + ", expected the default delete");
            if (problems.isEmpty()) pass(name);
            else fail(name, c.entries().size() + " entries; " + String.join("; ", problems));
        } catch (Exception e) {
            fail(name, "DescribeConfigs " + topic() + ": " + why(e));
        }
    }

    static void expectConfig(Config c, String name, String value, List<String> problems) {
        ConfigEntry e = c.get(name);
        if (e == null) {
            problems.add("no " + name + " entry");
        } else if (!value.equals(e.value()) || e.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
            problems.add(name + "=" + e.value() + " (source " + e.source() + "), expected " + value + " (DYNAMIC_TOPIC_CONFIG)");
        }
    }

    /** Two batches per partition with explicit CreateTime timestamps: uncompressed, then zstd. */
    void produceTimestamps(List<Rec> expected, Map<String, String> pids) {
        long t0 = (System.currentTimeMillis() - 600_000) / 1000 * 1000;
        st.setProperty("t0", String.valueOf(t0));
        List<String> errors = new ArrayList<>();
        for (String codec : new String[] {"none", "zstd"}) {
            try (KafkaProducer<byte[], byte[]> p = producer("timestamps-" + codec, codec, 5000, 16384)) {
                Batch b = new Batch();
                for (int part = 0; part < MAIN_PARTITIONS; part++) {
                    for (int i = 0; i < 5; i++) {
                        Rec r = new Rec();
                        r.section = "timestamps";
                        r.partition = part;
                        r.key = ("ts-" + codec + "-" + part + "-" + i).getBytes(StandardCharsets.UTF_8);
                        r.value = ("timestamped record " + i + " of the " + codec + " batch").getBytes(StandardCharsets.UTF_8);
                        r.headers.add(new RecordHeader("section", "timestamps".getBytes(StandardCharsets.UTF_8)));
                        r.headers.add(new RecordHeader("codec", codec.getBytes(StandardCharsets.UTF_8)));
                        long ts = t0 + part * 1000L + (codec.equals("zstd") ? 500 : 0) + i * 10L;
                        b.send(p, topic(), part, ts, r);
                    }
                }
                p.flush();   // one batch per partition
                String err = b.await();
                pids.put("timestamps-" + codec, producerIdOf(p));
                if (err != null) errors.add(codec + " batch: " + err);
                expected.addAll(b.recs);
            } catch (Exception e) {
                errors.add(codec + " batch: " + why(e));
            }
        }
        if (errors.isEmpty()) pass("produce_timestamps");
        else fail("produce_timestamps", String.join("; ", errors));
    }

    static byte[] valueFor(String codec, int i) {
        switch (i % 10) {
            case 7: return null;
            case 8: return new byte[0];
            case 9: {
                byte[] b = new byte[256];
                for (int j = 0; j < b.length; j++) b[j] = (byte) (j + i);
                return b;
            }
            default: return ("value-" + codec + "-" + i + ";").repeat(1 + i % 7).getBytes(StandardCharsets.UTF_8);
        }
    }

    /** Keyed records with headers (null and empty values, a null-valued header, a repeated header name). */
    void produceCodec(String codec, List<Rec> expected, Map<String, String> pids) {
        try (KafkaProducer<byte[], byte[]> p = producer("produce-" + codec, codec, 20, 4000)) {
            Batch b = new Batch();
            for (int i = 0; i < RECORDS_PER_CODEC; i++) {
                Rec r = new Rec();
                r.section = codec;
                r.key = i == 3 ? null : ("key-" + codec + "-" + i).getBytes(StandardCharsets.UTF_8);
                r.value = valueFor(codec, i);
                r.headers.add(new RecordHeader("codec", codec.getBytes(StandardCharsets.UTF_8)));
                r.headers.add(new RecordHeader("client", "java".getBytes(StandardCharsets.UTF_8)));
                r.headers.add(new RecordHeader("i", String.valueOf(i).getBytes(StandardCharsets.UTF_8)));
                r.headers.add(new RecordHeader("empty", new byte[0]));
                r.headers.add(new RecordHeader("dup", "first".getBytes(StandardCharsets.UTF_8)));
                r.headers.add(new RecordHeader("dup", "second".getBytes(StandardCharsets.UTF_8)));
                if (i % 5 == 0) r.headers.add(new RecordHeader("null-value", null));
                b.send(p, topic(), null, null, r);
                if (i % 4 == 3) sleep(2);   // batches span several timestamps
            }
            p.flush();
            String err = b.await();
            pids.put("produce-" + codec, producerIdOf(p));
            expected.addAll(b.recs);
            if (err == null) pass("produce_" + codec);
            else fail("produce_" + codec, err);
        } catch (Exception e) {
            fail("produce_" + codec, why(e));
        }
    }

    static byte[] pattern(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) ('a' + i % 26);
        return b;
    }

    /** A record just under max.message.bytes, one above it, and one more after the rejection. */
    void produceLarge(List<Rec> expected, Map<String, String> pids) {
        try (KafkaProducer<byte[], byte[]> p = producer("large", "none", 0, 16384)) {
            Rec big = new Rec();
            big.section = "large";
            big.partition = 0;
            big.key = "large".getBytes(StandardCharsets.UTF_8);
            big.value = pattern(LARGE_VALUE_BYTES);
            big.headers.add(new RecordHeader("section", "large".getBytes(StandardCharsets.UTF_8)));
            Batch b = new Batch();
            b.send(p, topic(), 0, null, big);
            String err = b.await();
            pids.put("large", producerIdOf(p));
            if (err == null) {
                expected.add(big);
                pass("large_record");
            } else {
                fail("large_record", "a " + LARGE_VALUE_BYTES + "-byte record (batch under max.message.bytes="
                    + MAX_MESSAGE_BYTES + "): " + err);
            }

            Rec huge = new Rec();
            huge.section = "too-large";
            huge.key = "too-large".getBytes(StandardCharsets.UTF_8);
            huge.value = pattern(TOO_LARGE_VALUE_BYTES);
            try {
                RecordMetadata md = p.send(new ProducerRecord<>(topic(), 0, huge.key, huge.value))
                    .get(OP.toMillis(), TimeUnit.MILLISECONDS);
                fail("message_too_large", "a " + TOO_LARGE_VALUE_BYTES + "-byte record was accepted at partition "
                    + md.partition() + " offset " + md.offset() + " (topic max.message.bytes=" + MAX_MESSAGE_BYTES + ")");
                // it is in the log now: keep the expected offsets honest
                huge.partition = md.partition();
                huge.offset = md.offset();
                huge.ts = md.timestamp();
                expected.add(huge);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RecordTooLargeException) pass("message_too_large", why(e));
                else fail("message_too_large", "expected RecordTooLargeException (MESSAGE_TOO_LARGE), got " + why(e));
            } catch (Exception e) {
                fail("message_too_large", "expected RecordTooLargeException (MESSAGE_TOO_LARGE), got " + why(e));
            }

            // the same idempotent producer goes on after the rejected batch
            Rec after = new Rec();
            after.section = "large";
            after.partition = 0;
            after.key = "after-too-large".getBytes(StandardCharsets.UTF_8);
            after.value = "the producer goes on after MESSAGE_TOO_LARGE".getBytes(StandardCharsets.UTF_8);
            Batch b2 = new Batch();
            b2.send(p, topic(), 0, null, after);
            String err2 = b2.await();
            if (err2 == null) {
                expected.add(after);
                pass("produce_after_rejection", "producer id/epoch now " + producerIdOf(p));
            } else {
                fail("produce_after_rejection", "the idempotent producer's next record after MESSAGE_TOO_LARGE: " + err2);
            }
        } catch (Exception e) {
            fail("large_record", why(e));
        }
    }

    // ------------------------------------------------------------------ verify

    void verify() throws Exception {
        if (!loadState() || topic() == null || !created(topic())) {
            fail("metadata", "topic was not created in the produce phase");
            return;
        }
        List<Rec> expected = loadExpected();
        try (Admin admin = admin()) {
            // -- metadata (waits for the broker to be back after a restart)
            String err = waitFor(30000, () -> {
                try {
                    return checkTopic(admin, topic(), MAIN_PARTITIONS);
                } catch (Exception e) {
                    return why(e);
                }
            });
            if (err == null) pass("metadata");
            else fail("metadata", err);

            // -- admin_persisted: the admin topic's 3 partitions, the main topic's configs
            if (created(adminTopic())) {
                try {
                    String e2 = checkTopic(admin, adminTopic(), 3);
                    if (e2 != null) fail("admin_persisted", e2);
                    else describeConfigs(admin, "admin_persisted");
                } catch (Exception e) {
                    fail("admin_persisted", why(e));
                }
            } else {
                describeConfigs(admin, "admin_persisted");
            }
        }
        verifyRecords(expected);
    }

    static boolean sameHeaders(List<Header> a, Header[] b) {
        if (a.size() != b.length) return false;
        for (int i = 0; i < b.length; i++) {
            if (!a.get(i).key().equals(b[i].key()) || !Arrays.equals(a.get(i).value(), b[i].value())) return false;
        }
        return true;
    }

    static String show(byte[] b) {
        if (b == null) return "null";
        String s = new String(b, StandardCharsets.UTF_8);
        return b.length + " bytes \"" + (s.length() > 40 ? s.substring(0, 40) + "..." : s) + "\"";
    }

    static String showHeaders(Collection<Header> hs) {
        List<String> l = new ArrayList<>();
        for (Header h : hs) l.add(h.key() + "=" + (h.value() == null ? "null" : new String(h.value(), StandardCharsets.UTF_8)));
        return l.toString();
    }

    void verifyRecords(List<Rec> expected) {
        String topic = topic();
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < MAIN_PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
        Map<TopicPartition, Map<Long, ConsumerRecord<byte[], byte[]>>> got = new HashMap<>();
        Map<TopicPartition, List<Long>> order = new HashMap<>();
        int extraCount = 0;
        try (KafkaConsumer<byte[], byte[]> c = consumer("verify", null)) {
            // -- consume_all: ListOffsets earliest/latest, then Fetch from offset 0 to the end
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps, OP);
            Map<TopicPartition, Long> end = c.endOffsets(tps, OP);
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 30000;
            String consumeErr = null;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp, OP) < end.get(tp)) done = false;
                if (done) break;
                if (System.currentTimeMillis() > deadline) {
                    Map<Integer, Long> pos = new TreeMap<>();
                    for (TopicPartition tp : tps) pos.put(tp.partition(), c.position(tp, OP));
                    consumeErr = "positions " + pos + " short of end offsets " + byPartition(end) + " after 30s";
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    got.computeIfAbsent(tp, k -> new HashMap<>()).put(r.offset(), r);
                    order.computeIfAbsent(tp, k -> new ArrayList<>()).add(r.offset());
                }
            }
            Map<TopicPartition, Long> wantEnd = new HashMap<>();
            for (TopicPartition tp : tps) wantEnd.put(tp, 0L);
            for (Rec r : expected) {
                TopicPartition tp = new TopicPartition(topic, r.partition);
                wantEnd.put(tp, Math.max(wantEnd.get(tp), r.offset + 1));
            }
            int total = 0;
            for (Map<Long, ConsumerRecord<byte[], byte[]>> m : got.values()) total += m.size();
            List<String> problems = new ArrayList<>();
            if (consumeErr != null) problems.add(consumeErr);
            for (TopicPartition tp : tps) {
                if (begin.get(tp) != 0) problems.add("partition " + tp.partition() + " earliest offset " + begin.get(tp) + ", expected 0");
                if (!end.get(tp).equals(wantEnd.get(tp))) {
                    problems.add("partition " + tp.partition() + " latest offset " + end.get(tp) + ", expected " + wantEnd.get(tp));
                }
            }
            Set<String> known = new HashSet<>();
            for (Rec r : expected) known.add(r.partition + ":" + r.offset);
            for (Map.Entry<TopicPartition, Map<Long, ConsumerRecord<byte[], byte[]>>> e : got.entrySet()) {
                for (long o : e.getValue().keySet()) if (!known.contains(e.getKey().partition() + ":" + o)) extraCount++;
            }
            if (extraCount > 0) problems.add(extraCount + " records that were not produced by this scenario");
            if (total < expected.size()) problems.add("consumed " + total + " of " + expected.size() + " records");
            if (problems.isEmpty()) pass("consume_all");
            else fail("consume_all", String.join("; ", problems));

            // -- content_<section>: key, value, headers of every record
            Map<String, List<String>> bad = new LinkedHashMap<>();
            Map<String, Integer> counts = new LinkedHashMap<>();
            for (Rec r : expected) {
                counts.merge(r.section, 1, Integer::sum);
                ConsumerRecord<byte[], byte[]> cr = got.getOrDefault(new TopicPartition(topic, r.partition), Map.of()).get(r.offset);
                List<String> b = bad.computeIfAbsent(r.section, k -> new ArrayList<>());
                if (cr == null) b.add(r.id() + " not consumed");
                else if (!Arrays.equals(r.key, cr.key())) b.add(r.id() + ": key " + show(cr.key()) + ", expected " + show(r.key));
                else if (!Arrays.equals(r.value, cr.value())) b.add(r.id() + ": value " + show(cr.value()) + ", expected " + show(r.value));
                else if (!sameHeaders(r.headers, cr.headers().toArray())) {
                    b.add(r.id() + ": headers " + showHeaders(Arrays.asList(cr.headers().toArray())) + ", expected " + showHeaders(r.headers));
                }
            }
            List<String> sections = new ArrayList<>(List.of("timestamps"));
            sections.addAll(List.of(CODECS));
            sections.add("large");
            for (String s : sections) {
                String name = "content_" + s;
                List<String> b = bad.getOrDefault(s, List.of());
                if (!counts.containsKey(s)) fail(name, "no " + s + " records were produced");
                else if (b.isEmpty()) pass(name);
                else fail(name, b.size() + " of " + counts.get(s) + " records differ; first: " + b.get(0));
            }

            // -- partition_order: offsets 0..n-1 in order, and in the order they were produced
            List<String> op = new ArrayList<>();
            for (TopicPartition tp : tps) {
                List<Long> seen = order.getOrDefault(tp, List.of());
                for (int i = 0; i < seen.size(); i++) {
                    if (seen.get(i) != i) {
                        op.add("partition " + tp.partition() + " delivered offset " + seen.get(i) + " at position " + i);
                        break;
                    }
                }
                List<Rec> rs = new ArrayList<>();
                for (Rec r : expected) if (r.partition == tp.partition()) rs.add(r);
                rs.sort(Comparator.comparingInt(r -> r.seq));
                for (int i = 1; i < rs.size(); i++) {
                    if (rs.get(i).offset <= rs.get(i - 1).offset) {
                        op.add("partition " + tp.partition() + ": " + rs.get(i).id() + " was produced after " + rs.get(i - 1).id());
                        break;
                    }
                }
            }
            if (op.isEmpty()) pass("partition_order");
            else fail("partition_order", String.join("; ", op));

            // -- record_timestamps: CreateTime, as produced
            List<String> tb = new ArrayList<>();
            for (Rec r : expected) {
                ConsumerRecord<byte[], byte[]> cr = got.getOrDefault(new TopicPartition(topic, r.partition), Map.of()).get(r.offset);
                if (cr == null) continue;
                if (cr.timestampType() != TimestampType.CREATE_TIME || cr.timestamp() != r.ts) {
                    tb.add(r.id() + ": " + cr.timestampType() + " " + cr.timestamp() + ", expected CreateTime " + r.ts);
                }
            }
            if (tb.isEmpty()) pass("record_timestamps");
            else fail("record_timestamps", tb.size() + " records differ; first: " + tb.get(0));

            offsetsForTimes(c, expected);
        } catch (Exception e) {
            fail("consume_all", why(e));
        }
    }

    static Map<Integer, Long> byPartition(Map<TopicPartition, Long> m) {
        Map<Integer, Long> r = new TreeMap<>();
        for (Map.Entry<TopicPartition, Long> e : m.entrySet()) r.put(e.getKey().partition(), e.getValue());
        return r;
    }

    /** The first offset in the partition with a timestamp >= ts (what ListOffsets answers), or null. */
    static Long firstAtOrAfter(List<Rec> part, long ts) {
        Long best = null;
        for (Rec r : part) if (r.ts >= ts && (best == null || r.offset < best)) best = r.offset;
        return best;
    }

    static final class Query {
        final int partition;
        final long ts;
        final String what;
        final Long want;

        Query(int partition, long ts, String what, Long want) {
            this.partition = partition;
            this.ts = ts;
            this.what = what;
            this.want = want;
        }
    }

    void offsetsForTimes(KafkaConsumer<byte[], byte[]> c, List<Rec> expected) {
        Map<Integer, List<Rec>> parts = new TreeMap<>();
        for (Rec r : expected) parts.computeIfAbsent(r.partition, k -> new ArrayList<>()).add(r);
        for (List<Rec> l : parts.values()) l.sort(Comparator.comparingLong(r -> r.offset));
        Map<String, Rec> byKey = new HashMap<>();
        for (Rec r : expected) if (r.key != null) byKey.put(r.keyString(), r);

        List<Query> plain = new ArrayList<>();
        List<Query> compressed = new ArrayList<>();
        long future = System.currentTimeMillis() + 7L * 24 * 3600 * 1000;
        for (int p = 0; p < MAIN_PARTITIONS; p++) {
            List<Rec> l = parts.getOrDefault(p, List.of());
            long t0 = Long.parseLong(st.getProperty("t0", "0"));
            plain.add(new Query(p, t0 - 60000, "before the first record", firstAtOrAfter(l, t0 - 60000)));
            Rec r2 = byKey.get("ts-none-" + p + "-2");
            if (r2 != null) {
                plain.add(new Query(p, r2.ts, "exact timestamp of record 2 of the uncompressed batch", r2.offset));
                plain.add(new Query(p, r2.ts + 5, "between records 2 and 3 of the uncompressed batch", firstAtOrAfter(l, r2.ts + 5)));
            }
            plain.add(new Query(p, future, "after the last record", null));
            Rec z3 = byKey.get("ts-zstd-" + p + "-3");
            if (z3 != null) {
                compressed.add(new Query(p, z3.ts - 5, "between records 2 and 3 of the zstd batch at offset "
                    + byKey.get("ts-zstd-" + p + "-0").offset, z3.offset));
            }
            // a record inside each codec's section whose predecessor has an earlier timestamp
            for (String codec : CODECS) {
                List<Rec> sec = new ArrayList<>();
                for (Rec r : l) if (r.section.equals(codec)) sec.add(r);
                for (int i = sec.size() / 2; i < sec.size(); i++) {
                    Rec r = sec.get(i);
                    if (r.ts > sec.get(i - 1).ts) {
                        Query q = new Query(p, r.ts, "timestamp of a " + codec + " record", firstAtOrAfter(l, r.ts));
                        (codec.equals("none") ? plain : compressed).add(q);
                        break;
                    }
                }
            }
        }
        runQueries(c, "offsets_for_times", plain);
        runQueries(c, "offsets_for_times_compressed", compressed);
    }

    void runQueries(KafkaConsumer<byte[], byte[]> c, String name, List<Query> qs) {
        List<String> bad = new ArrayList<>();
        try {
            // one ListOffsets request per round: a timestamp for each partition at most once
            List<Query> left = new ArrayList<>(qs);
            while (!left.isEmpty()) {
                Map<TopicPartition, Long> ask = new HashMap<>();
                List<Query> round = new ArrayList<>();
                for (Query q : new ArrayList<>(left)) {
                    TopicPartition tp = new TopicPartition(topic(), q.partition);
                    if (ask.containsKey(tp)) continue;
                    ask.put(tp, q.ts);
                    round.add(q);
                    left.remove(q);
                }
                Map<TopicPartition, OffsetAndTimestamp> ans = c.offsetsForTimes(ask, OP);
                for (Query q : round) {
                    OffsetAndTimestamp a = ans.get(new TopicPartition(topic(), q.partition));
                    Long gotOffset = a == null ? null : a.offset();
                    if (!Objects.equals(gotOffset, q.want)) {
                        bad.add("partition " + q.partition + " timestamp " + q.ts + " (" + q.what + "): got "
                            + (gotOffset == null ? "no offset" : "offset " + gotOffset) + ", expected "
                            + (q.want == null ? "no offset" : "offset " + q.want));
                    }
                }
            }
            if (qs.isEmpty()) fail(name, "no queries: the records they need were not produced");
            else if (bad.isEmpty()) pass(name);
            else fail(name, bad.size() + " of " + qs.size() + " lookups wrong: " + String.join("; ", bad));
        } catch (Exception e) {
            fail(name, "offsetsForTimes: " + why(e));
        }
    }

    // ------------------------------------------------------------------ cleanup

    void cleanup() throws Exception {
        if (!loadState() || topic() == null) {
            fail("delete_topic", "topic was not created in the produce phase");
            return;
        }
        try (Admin admin = admin()) {
            List<String> topics = new ArrayList<>();
            for (String t : List.of(topic(), adminTopic())) if (created(t)) topics.add(t);
            if (topics.isEmpty()) {
                fail("delete_topic", "topic was not created in the produce phase");
                return;
            }
            try {
                get(admin.deleteTopics(topics).all());
            } catch (Exception e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) {
                    fail("delete_topic", "deleteTopics " + topics + ": " + why(e));
                    return;
                }
            }
            String err = waitFor(20000, () -> {
                try {
                    Set<String> names = get(admin.listTopics().names());
                    List<String> still = new ArrayList<>();
                    for (String t : topics) if (names.contains(t)) still.add(t);
                    return still.isEmpty() ? null : "still listed: " + still;
                } catch (Exception e) {
                    return why(e);
                }
            });
            if (err == null) pass("delete_topic");
            else fail("delete_topic", "deleted, but 20s later " + err);
        }
    }
}
