package compat;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Reader;
import java.io.Writer;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** What the Java scenarios share: PASS/FAIL/SKIP lines, client settings, records and state files. */
abstract class Base {
    static final Duration OP = Duration.ofSeconds(30);
    /** Replication factor of the topics the scenarios create: COMPAT_REPLICATION_FACTOR, default 1. */
    static final short REPLICATION_FACTOR = replicationFactor();

    static short replicationFactor() {
        String v = System.getenv("COMPAT_REPLICATION_FACTOR");
        if (v == null || v.isEmpty()) return 1;
        try {
            short n = Short.parseShort(v.trim());
            if (n >= 1) return n;
        } catch (NumberFormatException e) {
            // reported below
        }
        System.err.println("bad COMPAT_REPLICATION_FACTOR: " + v);
        System.exit(2);
        return 1;
    }

    final String bootstrap;
    final Path stateDir;
    final Properties st = new Properties();
    final PrintStream out = System.out;
    boolean failed;

    Base(String bootstrap, Path stateDir) {
        this.bootstrap = bootstrap;
        this.stateDir = stateDir;
    }

    abstract String stateName();

    /** BOOTSTRAP [PHASE] [STATE_DIR] -> {bootstrap, phase, state dir}; a temporary dir for "all". */
    static String[] phaseArgs(String[] args, String name, String phases) throws IOException {
        if (args.length < 1 || args.length > 3) {
            System.err.println("usage: " + name + " BOOTSTRAP [" + phases + "] [STATE_DIR]");
            System.exit(2);
        }
        String phase = args.length > 1 ? args[1] : "all";
        Path dir;
        if (args.length > 2) {
            dir = Path.of(args[2]);
        } else if (phase.equals("all")) {
            dir = Files.createTempDirectory("compat-java.");
        } else {
            System.err.println("STATE_DIR is required for phase " + phase);
            System.exit(2);
            return null;
        }
        Files.createDirectories(dir);
        return new String[] {args[0], phase, dir.toString()};
    }

    /** Exit 1 if a check failed; client threads (heartbeats, a stuck member) must not keep the JVM alive. */
    void exit() {
        out.flush();
        System.exit(failed ? 1 : 0);
    }

    // ------------------------------------------------------------------ reporting

    void pass(String name) {
        out.println("PASS " + name);
        out.flush();
    }

    void pass(String name, String note) {
        // the note goes to stderr: the PASS line stays exactly "PASS name"
        pass(name);
        System.err.println("# " + name + ": " + note);
    }

    void fail(String name, String why) {
        failed = true;
        out.println("FAIL " + name + ": " + oneLine(why));
        out.flush();
    }

    void skip(String name, String why) {
        out.println("SKIP " + name + ": " + oneLine(why));
        out.flush();
    }

    static String oneLine(String s) {
        String t = String.valueOf(s).replaceAll("\\s+", " ").trim();
        return t.length() > 900 ? t.substring(0, 900) + " ..." : t;
    }

    /** The exception as the client reports it: class and message, with its causes. */
    static String why(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException) && t.getCause() != null) {
            t = t.getCause();
        }
        StringBuilder sb = new StringBuilder();
        Set<Throwable> seen = new HashSet<>();
        for (Throwable c = t; c != null && seen.add(c) && seen.size() <= 3; c = c.getCause()) {
            if (sb.length() > 0) sb.append("; caused by ");
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        return sb.toString();
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Polls cond every 250 ms until it returns null (success) or the time is up; returns the last complaint. */
    static String waitFor(long millis, Supplier<String> cond) {
        long deadline = System.currentTimeMillis() + millis;
        String last;
        while (true) {
            try {
                last = cond.get();
            } catch (RuntimeException e) {
                last = why(e);
            }
            if (last == null || System.currentTimeMillis() > deadline) return last;
            sleep(250);
        }
    }

    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(OP.toMillis(), TimeUnit.MILLISECONDS);
    }

    // ------------------------------------------------------------------ clients

    Properties base(String role) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "compat-java-" + role);
        return p;
    }

    Admin admin() {
        Properties p = base("admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    /** A producer with the client's defaults: acks=all, enable.idempotence=true (not set here). */
    KafkaProducer<byte[], byte[]> producer(String role, String codec, int lingerMs, int batchSize) {
        Properties p = base(role);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, String.valueOf(lingerMs));
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, String.valueOf(batchSize));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        return new KafkaProducer<>(p);
    }

    Properties consumerProps(String role, String group) {
        Properties p = base(role);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
            p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, "30000");
        }
        return p;
    }

    KafkaConsumer<byte[], byte[]> consumer(String role, String group) {
        return new KafkaConsumer<>(consumerProps(role, group));
    }

    /** The producer id and epoch the idempotent producer got from InitProducerId (internal state). */
    static String producerIdOf(KafkaProducer<?, ?> p) {
        try {
            Field tmField = KafkaProducer.class.getDeclaredField("transactionManager");
            tmField.setAccessible(true);
            Object tm = tmField.get(p);
            if (tm == null) return "no transaction manager: idempotence is off";
            Field pidField = tm.getClass().getDeclaredField("producerIdAndEpoch");
            pidField.setAccessible(true);
            Object pid = pidField.get(tm);
            Field id = pid.getClass().getField("producerId");
            Field epoch = pid.getClass().getField("epoch");
            return id.get(pid) + "/" + epoch.get(pid);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "unknown (" + e + ")";
        }
    }

    // ------------------------------------------------------------------ records and state

    /** One produced record and where the broker put it. */
    static final class Rec {
        String section;
        int seq;
        int partition;
        long offset = -1;
        long ts = -1;
        byte[] key;
        byte[] value;
        List<Header> headers = new ArrayList<>();

        String keyString() {
            return key == null ? "(null key)" : new String(key, StandardCharsets.UTF_8);
        }

        String id() {
            return section + " record " + keyString() + " (partition " + partition + ", offset " + offset + ")";
        }
    }

    static String enc(byte[] b) {
        return b == null ? "~" : "=" + Base64.getEncoder().encodeToString(b);
    }

    static byte[] dec(String s) {
        return s.equals("~") ? null : Base64.getDecoder().decode(s.substring(1));
    }

    static String encode(Rec r) {
        StringBuilder h = new StringBuilder();
        for (Header x : r.headers) {
            if (h.length() > 0) h.append(',');
            h.append(Base64.getEncoder().encodeToString(x.key().getBytes(StandardCharsets.UTF_8)))
                .append(':').append(enc(x.value()));
        }
        return String.join("\t", r.section, String.valueOf(r.seq), String.valueOf(r.partition),
            String.valueOf(r.offset), String.valueOf(r.ts), enc(r.key), enc(r.value),
            h.length() == 0 ? "." : h.toString());
    }

    static Rec decode(String line) {
        String[] f = line.split("\t", -1);
        Rec r = new Rec();
        r.section = f[0];
        r.seq = Integer.parseInt(f[1]);
        r.partition = Integer.parseInt(f[2]);
        r.offset = Long.parseLong(f[3]);
        r.ts = Long.parseLong(f[4]);
        r.key = dec(f[5]);
        r.value = dec(f[6]);
        if (!f[7].equals(".")) {
            for (String e : f[7].split(",")) {
                int c = e.indexOf(':');
                String name = new String(Base64.getDecoder().decode(e.substring(0, c)), StandardCharsets.UTF_8);
                r.headers.add(new RecordHeader(name, dec(e.substring(c + 1))));
            }
        }
        return r;
    }

    Path statePath() {
        return stateDir.resolve(stateName() + "-state.properties");
    }

    Path expectedPath() {
        return stateDir.resolve(stateName() + "-expected.tsv");
    }

    void saveState() throws IOException {
        try (Writer w = Files.newBufferedWriter(statePath(), StandardCharsets.UTF_8)) {
            st.store(w, "compat-tests/java scenario state");
        }
    }

    boolean loadState() throws IOException {
        if (!Files.exists(statePath())) return false;
        try (Reader r = Files.newBufferedReader(statePath(), StandardCharsets.UTF_8)) {
            st.load(r);
        }
        return true;
    }

    void saveExpected(List<Rec> recs) throws IOException {
        List<String> lines = new ArrayList<>();
        for (Rec r : recs) lines.add(encode(r));
        Files.write(expectedPath(), lines, StandardCharsets.UTF_8);
    }

    List<Rec> loadExpected() throws IOException {
        List<Rec> recs = new ArrayList<>();
        if (!Files.exists(expectedPath())) return recs;
        for (String line : Files.readAllLines(expectedPath(), StandardCharsets.UTF_8)) {
            if (!line.isEmpty()) recs.add(decode(line));
        }
        return recs;
    }

    String topic() { return st.getProperty("topic"); }
    boolean created(String t) { return "true".equals(st.getProperty("created." + t)); }

    /** Sends records in order and fills in partition / offset / timestamp; returns failures. */
    static final class Batch {
        final List<Rec> recs = new ArrayList<>();
        final List<Future<RecordMetadata>> futures = new ArrayList<>();
        final List<String> errors = new ArrayList<>();

        void send(KafkaProducer<byte[], byte[]> p, String topic, Integer partition, Long ts, Rec r) {
            recs.add(r);
            try {
                futures.add(p.send(new ProducerRecord<>(topic, partition, ts, r.key, r.value, r.headers)));
            } catch (RuntimeException e) {
                futures.add(null);
                errors.add(r.keyString() + ": " + why(e));
            }
        }

        /** Waits for every send (bounded); returns null when all succeeded, else a summary. */
        String await() {
            long deadline = System.currentTimeMillis() + OP.toMillis();
            for (int i = 0; i < recs.size(); i++) {
                Future<RecordMetadata> f = futures.get(i);
                if (f == null) continue;
                Rec r = recs.get(i);
                try {
                    RecordMetadata md = f.get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                    r.partition = md.partition();
                    r.offset = md.offset();
                    r.ts = md.timestamp();
                } catch (Exception e) {
                    errors.add(r.keyString() + ": " + why(e));
                }
            }
            if (errors.isEmpty()) return null;
            return errors.size() + " of " + recs.size() + " sends failed, first: " + errors.get(0);
        }
    }


    /**
     * null when the topic is described with n partitions, each led by a known broker, with
     * REPLICATION_FACTOR distinct replicas (the leader among them) and the leader in the ISR;
     * else what is wrong.
     */
    static String checkTopic(Admin admin, String topic, int n) throws Exception {
        TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
        Collection<Node> nodes = get(admin.describeCluster().nodes());
        Set<Integer> ids = new HashSet<>();
        for (Node node : nodes) ids.add(node.id());
        if (d.partitions().size() != n) {
            return topic + " has " + d.partitions().size() + " partitions, expected " + n;
        }
        if (d.topicId() == null || Uuid.ZERO_UUID.equals(d.topicId())) return topic + " has no topic id";
        for (TopicPartitionInfo p : d.partitions()) {
            if (p.leader() == null || p.leader().isEmpty() || !ids.contains(p.leader().id())) {
                return topic + " partition " + p.partition() + " leader " + p.leader() + " not among brokers " + ids;
            }
            if (p.replicas().isEmpty() || !p.isr().contains(p.leader())) {
                return topic + " partition " + p.partition() + " replicas " + p.replicas() + " isr " + p.isr();
            }
            Set<Integer> replicaIds = new HashSet<>();
            for (Node r : p.replicas()) replicaIds.add(r.id());
            if (p.replicas().size() != REPLICATION_FACTOR || replicaIds.size() != REPLICATION_FACTOR
                    || !replicaIds.contains(p.leader().id())) {
                return topic + " partition " + p.partition() + " replicas " + p.replicas() + ", expected "
                    + REPLICATION_FACTOR + " distinct replicas including the leader " + p.leader().id();
            }
        }
        return null;
    }
}
