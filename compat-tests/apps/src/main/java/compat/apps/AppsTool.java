package compat.apps;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * run.sh's helpers around the applications (plain kafka-clients).
 *
 * <pre>
 *   create-topics BOOTSTRAP PARTITIONS TOPIC...      (replication factor COMPAT_REPLICATION_FACTOR)
 *   check-config BOOTSTRAP K=V[,K=V...] TOPIC...      every TOPIC exists, has these configs and
 *                                                     COMPAT_REPLICATION_FACTOR replicas
 *   gen-text FILE SEED LINES                          deterministic text
 *   produce BOOTSTRAP TOPIC FILE                      one record per line, key "line-N", acks=all
 *   verify-counts BOOTSTRAP TOPIC TIMEOUT_S FILE...   wait until the latest value per key in TOPIC
 *                                                     equals the word counts of the FILEs
 *   wait-purged BOOTSTRAP TOPIC TIMEOUT_S             wait until some partition's log start offset > 0
 *   wait-compacted BOOTSTRAP TOPIC TIMEOUT_S FILE...  wait until some partition of TOPIC (String
 *                                                     keys, Long values: a count changelog) has
 *                                                     fewer records than offsets; the latest value
 *                                                     per key must always be the word counts of
 *                                                     the FILEs
 *   verify-counts-committed BOOTSTRAP TOPIC TIMEOUT_S FILE...
 *                                                     verify-counts as a read_committed consumer
 *   produce-watch BOOTSTRAP INPUT FILE OUTPUT TIMEOUT_S
 *                                                     produce FILE to INPUT as `produce` does, then
 *                                                     return as soon as OUTPUT's log end offsets pass
 *                                                     the ones before the produce (an app is at work)
 *   list-txns BOOTSTRAP PREFIX                        ListTransactions: the transactional ids
 *                                                     starting with PREFIX (at least one) and
 *                                                     their states
 *   produce-seq BOOTSTRAP TOPIC PARTITIONS COUNT      COUNT records per partition, key k-P-I,
 *                                                     value v-P-I (acks=all, idempotent)
 *   verify-copy BOOTSTRAP INPUT OUTPUT TIMEOUT_S      every partition of OUTPUT read read_committed
 *                                                     holds exactly the records of the same
 *                                                     partition of INPUT, in order; the aborted
 *                                                     records (read_uncommitted only) are counted
 * </pre>
 *
 * The last line on stdout is the result (the reason on failure); exit code 0 = ok, 1 = failed,
 * 3 = a wait ran out with nothing wrong seen (wait-compacted: nothing compacted yet).
 */
public final class AppsTool {
    private AppsTool() {}

    static final class Failed extends Exception {
        private static final long serialVersionUID = 1L;

        Failed(String msg) {
            super(msg);
        }
    }

    /** A wait that ran out without anything wrong seen (exit code 3: run.sh SKIPs). */
    static final class NotYet extends Exception {
        private static final long serialVersionUID = 1L;

        NotYet(String msg) {
            super(msg);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) usage();
        try {
            String result = switch (args[0]) {
                case "create-topics" -> createTopics(args);
                case "check-config" -> checkConfig(args);
                case "gen-text" -> genText(args);
                case "produce" -> produce(args);
                case "verify-counts" -> verifyCounts(args, "read_uncommitted");
                case "wait-purged" -> waitPurged(args);
                case "wait-compacted" -> waitCompacted(args);
                case "verify-counts-committed" -> verifyCounts(args, "read_committed");
                case "produce-watch" -> produceWatch(args);
                case "list-txns" -> listTxns(args);
                case "produce-seq" -> produceSeq(args);
                case "verify-copy" -> verifyCopy(args);
                default -> {
                    usage();
                    yield "";
                }
            };
            System.out.println(result);
        } catch (NotYet n) {
            System.out.println(n.getMessage());
            System.exit(3);
        } catch (Failed f) {
            System.out.println(f.getMessage());
            System.exit(1);
        } catch (ExecutionException e) {
            e.printStackTrace();
            System.out.println(e.getCause());
            System.exit(1);
        } catch (Exception e) {
            e.printStackTrace();
            System.out.println(e);
            System.exit(1);
        }
    }

    private static void usage() {
        System.err.println("usage: AppsTool create-topics|check-config|gen-text|produce|verify-counts|wait-purged|wait-compacted|verify-counts-committed|produce-watch|list-txns|produce-seq|verify-copy ...");
        System.exit(2);
    }

    private static void need(String[] args, int n) {
        if (args.length < n) usage();
    }

    static short replicationFactor() {
        return Short.parseShort(System.getenv().getOrDefault("COMPAT_REPLICATION_FACTOR", "1"));
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    private static String createTopics(String[] args) throws Exception {
        need(args, 4);
        int partitions = Integer.parseInt(args[2]);
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 3; i < args.length; i++) topics.add(new NewTopic(args[i], partitions, replicationFactor()));
        try (Admin admin = admin(args[1])) {
            admin.createTopics(topics).all().get(30, TimeUnit.SECONDS);
        }
        return "created " + topics.size() + " topics with " + partitions + " partitions";
    }

    private static String checkConfig(String[] args) throws Exception {
        need(args, 4);
        Map<String, String> want = new TreeMap<>();
        for (String kv : args[2].split(",")) {
            int eq = kv.indexOf('=');
            if (eq <= 0) usage();
            want.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        List<String> names = List.of(args).subList(3, args.length);
        List<String> bad = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        try (Admin admin = admin(args[1])) {
            Map<String, TopicDescription> descs = admin.describeTopics(names).allTopicNames().get(30, TimeUnit.SECONDS);
            List<ConfigResource> res = names.stream()
                    .map(n -> new ConfigResource(ConfigResource.Type.TOPIC, n)).collect(Collectors.toList());
            Map<ConfigResource, Config> configs = admin.describeConfigs(res).all().get(30, TimeUnit.SECONDS);
            for (ConfigResource r : res) {
                List<String> kvs = new ArrayList<>();
                for (Map.Entry<String, String> w : want.entrySet()) {
                    ConfigEntry e = configs.get(r).get(w.getKey());
                    String got = e == null ? null : e.value();
                    kvs.add(w.getKey() + "=" + got);
                    if (!w.getValue().equals(got)) {
                        bad.add(r.name() + " has " + w.getKey() + "=" + got + ", want " + w.getValue());
                    }
                }
                TopicDescription d = descs.get(r.name());
                int parts = d.partitions().size();
                int rf = d.partitions().get(0).replicas().size();
                if (rf != replicationFactor() || d.partitions().stream().anyMatch(pi -> pi.replicas().size() != rf)) {
                    bad.add(r.name() + " has replicas " + d.partitions().stream()
                            .map(pi -> String.valueOf(pi.replicas().size())).collect(Collectors.joining(","))
                            + " per partition, want " + replicationFactor());
                }
                seen.add(r.name() + "(" + parts + "p rf" + rf + " " + String.join(" ", kvs) + ")");
            }
        }
        if (!bad.isEmpty()) throw new Failed(String.join("; ", bad));
        return String.join(" ", seen);
    }

    private static final String[] VOCABULARY = {
        "kafka", "broker", "stream", "topic", "partition", "offset", "record", "leader", "replica",
        "consumer", "producer", "group", "commit", "fetch", "log", "segment", "compact", "delete",
        "state", "store", "changelog", "repartition", "count", "word", "table", "window", "join",
        "Alpha", "BETA", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "élan", "naïve", "café", "x1", "2024", "a", "an", "the", "of", "to", "and", "or", "not",
    };

    private static String genText(String[] args) throws IOException {
        need(args, 4);
        Random rnd = new Random(Long.parseLong(args[2]));
        int lines = Integer.parseInt(args[3]);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < lines; i++) {
            int n = 1 + rnd.nextInt(12);
            for (int j = 0; j < n; j++) {
                if (j > 0) sb.append(rnd.nextInt(5) == 0 ? ", " : " ");
                // a skewed pick: some words are much more frequent than others
                int k = (int) Math.floor(Math.pow(rnd.nextDouble(), 2) * VOCABULARY.length);
                sb.append(VOCABULARY[k]);
            }
            sb.append(rnd.nextInt(3) == 0 ? ".\n" : "\n");
        }
        Files.writeString(Path.of(args[1]), sb.toString(), StandardCharsets.UTF_8);
        return "wrote " + lines + " lines to " + args[1];
    }

    private static String produce(String[] args) throws Exception {
        need(args, 4);
        List<String> lines = Files.readAllLines(Path.of(args[3]), StandardCharsets.UTF_8);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            long base = System.nanoTime();
            for (int i = 0; i < lines.size(); i++) {
                producer.send(new ProducerRecord<>(args[2], "line-" + base + "-" + i, lines.get(i)));
            }
            producer.flush();
            // flush() returns when every send completed; get() on one more surfaces any error
            producer.send(new ProducerRecord<>(args[2], "line-" + base + "-end", "")).get(60, TimeUnit.SECONDS);
        }
        return "produced " + (lines.size() + 1) + " records to " + args[2];
    }

    static Map<String, Long> expectedCounts(Collection<String> files) throws IOException {
        Map<String, Long> counts = new TreeMap<>();
        for (String f : files) {
            for (String line : Files.readAllLines(Path.of(f), StandardCharsets.UTF_8)) {
                for (String w : WordCountApp.words(line)) counts.merge(w, 1L, Long::sum);
            }
        }
        return counts;
    }

    private static String verifyCounts(String[] args, String isolation) throws Exception {
        need(args, 5);
        String topic = args[2];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[3]));
        Map<String, Long> want = expectedCounts(List.of(args).subList(4, args.length));
        long wantTotal = want.values().stream().mapToLong(Long::longValue).sum();
        Map<String, Long> got = new HashMap<>();
        long records = 0;
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, Long> consumer =
                new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> tps = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(pi -> new TopicPartition(pi.topic(), pi.partition())).collect(Collectors.toList());
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            while (true) {
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(300))) {
                    records++;
                    got.put(r.key(), r.value());
                    Long w = want.get(r.key());
                    // counts only grow: one above the expected count is a record counted twice
                    if (w == null || r.value() > w) {
                        throw new Failed("word " + r.key() + " counted " + r.value() + ", expected "
                                + (w == null ? "no such word" : w) + " (" + r.topic() + "-" + r.partition()
                                + "@" + r.offset() + ")");
                    }
                }
                if (got.equals(want)) {
                    return want.size() + " words, " + wantTotal + " occurrences, " + records
                            + " count updates read from " + topic;
                }
                if (System.nanoTime() > deadline) {
                    TreeSet<String> keys = new TreeSet<>(want.keySet());
                    List<String> diff = new ArrayList<>();
                    for (String k : keys) {
                        if (!want.get(k).equals(got.get(k))) diff.add(k + "=" + got.get(k) + "/" + want.get(k));
                    }
                    throw new Failed("timed out after " + args[3] + "s: " + diff.size() + " of " + want.size()
                            + " words differ (got/expected): "
                            + String.join(" ", diff.subList(0, Math.min(diff.size(), 10)))
                            + (diff.size() > 10 ? " ..." : "") + "; " + records + " records read");
                }
            }
        }
    }

    private static String waitCompacted(String[] args) throws Exception {
        need(args, 5);
        String topic = args[2];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[3]));
        Map<String, Long> want = expectedCounts(List.of(args).subList(4, args.length));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        String last = "";
        try (KafkaConsumer<String, Long> consumer =
                new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> tps = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(pi -> new TopicPartition(pi.topic(), pi.partition()))
                    .sorted((a, b) -> Integer.compare(a.partition(), b.partition()))
                    .collect(Collectors.toList());
            consumer.assign(tps);
            while (true) {
                // one pass over the whole topic: records and offset span per partition
                consumer.seekToBeginning(tps);
                Map<TopicPartition, Long> start = new HashMap<>();
                for (TopicPartition tp : tps) start.put(tp, consumer.position(tp, Duration.ofSeconds(30)));
                Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(30));
                Map<TopicPartition, Long> records = new HashMap<>();
                Map<String, Long> latest = new HashMap<>();
                long passDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (tps.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                    if (System.nanoTime() > passDeadline) throw new Failed("could not read " + topic + " to its end in 30s");
                    for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(300))) {
                        TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                        if (r.offset() >= end.get(tp)) continue;
                        records.merge(tp, 1L, Long::sum);
                        latest.put(r.key(), r.value());
                    }
                }
                if (!latest.equals(want)) {
                    List<String> diff = new ArrayList<>();
                    for (String k : new TreeSet<>(want.keySet())) {
                        if (!want.get(k).equals(latest.get(k))) diff.add(k + "=" + latest.get(k) + "/" + want.get(k));
                    }
                    for (String k : latest.keySet()) if (!want.containsKey(k)) diff.add(k + "=" + latest.get(k) + "/none");
                    throw new Failed("the latest value per key in " + topic + " is not the word count: " + diff.size()
                            + " keys differ (got/expected): " + String.join(" ", diff.subList(0, Math.min(10, diff.size()))));
                }
                boolean compacted = false;
                List<String> desc = new ArrayList<>();
                for (TopicPartition tp : tps) {
                    long n = records.getOrDefault(tp, 0L);
                    long span = end.get(tp) - start.get(tp);
                    if (n < span) compacted = true;
                    desc.add(tp.partition() + ": " + n + " records at offsets " + start.get(tp) + ".." + end.get(tp));
                }
                last = String.join(", ", desc);
                if (compacted) return "compacted, latest value per key right (" + want.size() + " keys); " + last;
                if (System.nanoTime() > deadline) {
                    throw new NotYet("nothing compacted within " + args[3] + "s (latest value per key right; " + last + ")");
                }
                Thread.sleep(1000);
            }
        }
    }

    private static String waitPurged(String[] args) throws Exception {
        need(args, 4);
        String topic = args[2];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[3]));
        try (Admin admin = admin(args[1])) {
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            d.partitions().forEach(pi -> {
                earliest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.earliest());
                latest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.latest());
            });
            while (true) {
                Map<TopicPartition, Long> start = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
                admin.listOffsets(earliest).all().get(30, TimeUnit.SECONDS).forEach((tp, r) -> start.put(tp, r.offset()));
                Map<TopicPartition, Long> end = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
                admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS).forEach((tp, r) -> end.put(tp, r.offset()));
                String desc = start.keySet().stream()
                        .map(tp -> tp.partition() + ":" + start.get(tp) + ".." + end.get(tp))
                        .collect(Collectors.joining(" "));
                if (start.values().stream().anyMatch(o -> o > 0)) return "log start offsets " + desc;
                if (System.nanoTime() > deadline) {
                    throw new Failed("no partition of " + topic + " was purged within " + args[3]
                            + "s (log start..end: " + desc + ")");
                }
                Thread.sleep(500);
            }
        }
    }

    static Map<TopicPartition, Long> endOffsets(Admin admin, String topic) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        d.partitions().forEach(pi -> latest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.latest()));
        Map<TopicPartition, Long> end = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
        admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS).forEach((tp, r) -> end.put(tp, r.offset()));
        return end;
    }

    private static String produceWatch(String[] args) throws Exception {
        need(args, 6);
        String output = args[4];
        long timeoutS = Long.parseLong(args[5]);
        try (Admin admin = admin(args[1])) {
            Map<TopicPartition, Long> before = endOffsets(admin, output);
            String produced = produce(new String[] {"produce", args[1], args[2], args[3]});
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
            while (true) {
                Map<TopicPartition, Long> now = endOffsets(admin, output);
                long grown = 0;
                for (Map.Entry<TopicPartition, Long> e : now.entrySet()) grown += e.getValue() - before.getOrDefault(e.getKey(), 0L);
                if (grown > 0) return produced + "; " + output + " grew by " + grown + " offsets: " + before.values() + " -> " + now.values();
                if (System.nanoTime() > deadline) throw new Failed(produced + "; " + output + " did not grow within " + timeoutS + "s: " + now.values());
                Thread.sleep(20);
            }
        }
    }

    private static String listTxns(String[] args) throws Exception {
        need(args, 3);
        try (Admin admin = admin(args[1])) {
            Map<String, String> mine = new TreeMap<>();
            for (org.apache.kafka.clients.admin.TransactionListing l : admin.listTransactions().all().get(30, TimeUnit.SECONDS)) {
                if (l.transactionalId().startsWith(args[2])) mine.put(l.transactionalId(), l.state().toString());
            }
            if (mine.isEmpty()) throw new Failed("ListTransactions lists no transactional id starting with " + args[2]);
            return mine.size() + " transactional ids " + mine;
        }
    }

    private static String produceSeq(String[] args) throws Exception {
        need(args, 5);
        int partitions = Integer.parseInt(args[3]);
        int count = Integer.parseInt(args[4]);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            List<java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                for (int part = 0; part < partitions; part++) {
                    fs.add(producer.send(new ProducerRecord<>(args[2], part, String.format("k-%d-%06d", part, i),
                            String.format("v-%d-%06d", part, i))));
                }
            }
            producer.flush();
            for (var f : fs) f.get(60, TimeUnit.SECONDS);
        }
        return "produced " + count + " records to each of the " + partitions + " partitions of " + args[2];
    }

    /** Every record of the topic (to its end offsets at the start) as "key=value" per partition. */
    static Map<Integer, List<String>> readAll(String bootstrap, String topic, String isolation, long timeoutMs)
            throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        Map<Integer, List<String>> out = new TreeMap<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = consumer.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(pi -> new TopicPartition(pi.topic(), pi.partition())).collect(Collectors.toList());
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            // read_committed: the end offsets are the last stable offsets
            Map<TopicPartition, Long> end = consumer.endOffsets(tps);
            for (TopicPartition tp : tps) out.put(tp.partition(), new ArrayList<>());
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (tps.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new Failed("reading " + topic + " (" + isolation + ") did not reach the end offsets " + end.values()
                            + " within " + timeoutMs / 1000 + "s");
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    out.get(r.partition()).add(r.key() + "=" + r.value());
                }
            }
        }
        return out;
    }

    private static String verifyCopy(String[] args) throws Exception {
        need(args, 5);
        long timeoutMs = TimeUnit.SECONDS.toMillis(Long.parseLong(args[4]));
        Map<Integer, List<String>> in = readAll(args[1], args[2], "read_uncommitted", timeoutMs);
        // the copiers have exited: the output's last stable offsets must reach its ends
        long deadline = System.currentTimeMillis() + timeoutMs;
        Map<Integer, List<String>> committed;
        String last;
        while (true) {
            committed = readAll(args[1], args[3], "read_committed", timeoutMs);
            List<String> bad = new ArrayList<>();
            for (Map.Entry<Integer, List<String>> e : in.entrySet()) {
                List<String> got = committed.getOrDefault(e.getKey(), List.of());
                if (got.equals(e.getValue())) continue;
                Map<String, Integer> n = new HashMap<>();
                for (String r : got) n.merge(r, 1, Integer::sum);
                long dup = n.values().stream().filter(c -> c > 1).count();
                long lost = e.getValue().stream().filter(r -> !n.containsKey(r)).count();
                java.util.Set<String> inSet = new java.util.HashSet<>(e.getValue());
                long foreign = got.stream().filter(r -> !inSet.contains(r)).count();
                bad.add("partition " + e.getKey() + ": " + got.size() + " committed records for " + e.getValue().size()
                        + " input records (" + lost + " lost, " + dup + " duplicated, " + foreign + " not from the input"
                        + (lost == 0 && dup == 0 && foreign == 0 ? ", out of order" : "") + ")");
            }
            if (bad.isEmpty()) break;
            last = String.join("; ", bad);
            if (System.currentTimeMillis() > deadline) throw new Failed(last);
            Thread.sleep(1000);
        }
        Map<Integer, List<String>> all = readAll(args[1], args[3], "read_uncommitted", timeoutMs);
        long total = in.values().stream().mapToLong(List::size).sum();
        long aborted = all.values().stream().mapToLong(List::size).sum() - committed.values().stream().mapToLong(List::size).sum();
        return total + " records in " + in.size() + " partitions copied exactly once, in order (read_committed); aborted="
                + aborted + " (records of aborted transactions, read_uncommitted only)";
    }
}
