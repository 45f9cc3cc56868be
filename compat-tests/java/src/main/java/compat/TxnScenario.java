package compat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Transactions scenario for the Java client: the checks of python/scenario_txn.py, with the same
 * names, plus the admin client's transaction APIs and the coordinator's timeout.
 *
 * <pre>
 * java -cp compat-java.jar compat.TxnScenario BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
 * </pre>
 *
 * produce: topics OUT, IN (3 partitions) and OPEN (1); one transactional producer commits,
 * aborts (records flushed first), commits, aborts, commits; an open transaction holds the last
 * stable offset past a plain producer's later records (ListOffsets read_committed, reads) and is
 * described by the admin client (DescribeTransactions Ongoing with its partitions,
 * ListTransactions with the state filter, DescribeProducers: the partition's open transaction
 * start offset) before it commits (CompleteCommit); a second producer with the same
 * transactional.id fences the first (ProducerFencedException / InvalidProducerEpochException);
 * Admin.fenceProducers fences a producer; a transaction older than its transaction.timeout.ms is
 * aborted by the coordinator; consume-transform-produce with sendOffsetsToTransaction and the
 * consumer's group metadata (committed round, aborted round, re-read round).
 * verify / restart-verify: read_committed, read_uncommitted, committed offsets; verify leaves
 * a transaction open on OPEN (the JVM exits without closing the producer: close() would abort
 * it); restart-verify finds it still open, then a new producer with its transactional.id
 * aborts it. cleanup: DeleteGroups, DeleteTopics.
 */
public final class TxnScenario extends Base {
    static final int PARTITIONS = 3;
    static final int TXN_RECORDS = 30;
    static final int IN_RECORDS = 30;
    static final int CTP_FIRST = 12;
    static final int OPEN_RECORDS = 5;
    static final int OPEN_TXN_TIMEOUT_MS = 900000;
    static final int TIMEOUT_TXN_MS = 3000;   // txn_timeout_abort's transaction.timeout.ms
    static final long READ_MS = 30000;
    static final long IDLE_MS = 1500;

    /** One record as the producer got it acknowledged, and what became of its transaction. */
    static final class L {
        String status;   // committed | aborted | open | after-open
        String txn;
        int p;
        long o;
        String k;
        String v;

        L(String status, String txn, int p, long o, String k, String v) {
            this.status = status;
            this.txn = txn;
            this.p = p;
            this.o = o;
            this.k = k;
            this.v = v;
        }

        L with(String s) {
            return new L(s, txn, p, o, k, v);
        }

        String pos() {
            return "p" + p + "@" + o;
        }
    }

    final List<L> ledger = new ArrayList<>();

    TxnScenario(String bootstrap, Path stateDir) {
        super(bootstrap, stateDir);
    }

    @Override
    String stateName() {
        return "java-txn";
    }

    String out() { return st.getProperty("out"); }
    String in() { return st.getProperty("in"); }
    String open() { return st.getProperty("open"); }
    String group() { return st.getProperty("group"); }

    public static void main(String[] args) throws Exception {
        String[] a = phaseArgs(args, "TxnScenario", "all|produce|verify|restart-verify|cleanup");
        TxnScenario s = new TxnScenario(a[0], Path.of(a[2]));
        switch (a[1]) {
            case "all" -> {
                if (s.produce() && s.verify()) s.restartVerify();
                s.cleanup();
            }
            case "produce" -> s.produce();
            case "verify" -> s.verify();
            case "restart-verify" -> s.restartVerify();
            case "cleanup" -> s.cleanup();
            default -> { System.err.println("bad phase: " + a[1]); System.exit(2); }
        }
        s.exit();
    }

    /** A check failed that the rest of the phase depends on. */
    static final class Stop extends Exception {
        Stop(String m) {
            super(m);
        }
    }

    void check(String name, List<String> problems, boolean fatal, String note) throws Stop {
        if (problems.isEmpty()) {
            if (note != null) pass(name, note); else pass(name);
            return;
        }
        String msg = String.join("; ", problems.subList(0, Math.min(4, problems.size())));
        if (problems.size() > 4) msg += " (+" + (problems.size() - 4) + " more)";
        fail(name, msg);
        if (fatal) throw new Stop(name);
    }

    /** Fails name (and stops the phase) when there are problems; prints nothing otherwise. */
    void require(String name, List<String> problems) throws Stop {
        if (!problems.isEmpty()) check(name, problems, true, null);
    }

    // ------------------------------------------------------------------ ledger state

    Path ledgerPath(String which) {
        return stateDir.resolve(stateName() + "-" + which + ".tsv");
    }

    void saveLedger(String which, List<L> recs) throws IOException {
        List<String> lines = new ArrayList<>();
        for (L r : recs) lines.add(String.join("\t", r.status, r.txn, "" + r.p, "" + r.o, r.k, r.v));
        Files.write(ledgerPath(which), lines, StandardCharsets.UTF_8);
    }

    List<L> loadLedger(String which) throws IOException {
        List<L> recs = new ArrayList<>();
        if (!Files.exists(ledgerPath(which))) return recs;
        for (String line : Files.readAllLines(ledgerPath(which), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            recs.add(new L(f[0], f[1], Integer.parseInt(f[2]), Long.parseLong(f[3]), f[4], f[5]));
        }
        return recs;
    }

    // ------------------------------------------------------------------ clients

    KafkaProducer<byte[], byte[]> txnProducer(String tid, String role, int timeoutMs) {
        Properties p = base("txn-" + role);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, String.valueOf(timeoutMs));
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        return new KafkaProducer<>(p);
    }

    /** Sends count records k-LABEL-i / LABEL-i to partition i % partitions; the futures in order. */
    static List<Future<RecordMetadata>> send(KafkaProducer<byte[], byte[]> p, String topic, String label, int count,
                                             int partitions) {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String k = String.format("k-%s-%03d", label, i), v = String.format("%s-%03d", label, i);
            fs.add(p.send(new ProducerRecord<>(topic, i % partitions, null, k.getBytes(StandardCharsets.UTF_8),
                v.getBytes(StandardCharsets.UTF_8), List.of(new RecordHeader("txn", label.getBytes(StandardCharsets.UTF_8))))));
        }
        return fs;
    }

    /** Waits for the sends; the acknowledged ones as ledger records; failures go to errors. */
    static List<L> acked(List<Future<RecordMetadata>> fs, String label, String status, List<String> errors) {
        List<L> out = new ArrayList<>();
        for (int i = 0; i < fs.size(); i++) {
            try {
                RecordMetadata md = fs.get(i).get(OP.toMillis(), TimeUnit.MILLISECONDS);
                out.add(new L(status, label, md.partition(), md.offset(), String.format("k-%s-%03d", label, i),
                    String.format("%s-%03d", label, i)));
            } catch (Exception e) {
                errors.add(label + "-" + i + ": " + why(e));
            }
        }
        return out;
    }

    /** Non-transactional records (default idempotent producer, acks=all). */
    List<L> plain(String topic, String label, int count, int partitions, List<String> problems) {
        try (KafkaProducer<byte[], byte[]> p = producer("txn-plain", "none", 5, 16384)) {
            List<String> errors = new ArrayList<>();
            List<L> recs = acked(send(p, topic, label, count, partitions), label, "committed", errors);
            if (!errors.isEmpty()) problems.add(errors.size() + " plain sends failed, first: " + errors.get(0));
            return recs;
        }
    }

    KafkaConsumer<byte[], byte[]> reader(String isolation, String group) {
        Properties p = consumerProps("txn-" + isolation, group);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        return new KafkaConsumer<>(p);
    }

    /** Reads topic from the start until every expected position arrived, then IDLE_MS more. */
    List<L> read(String topic, int partitions, String isolation, Collection<L> expected, long timeoutMs) {
        Set<String> want = new HashSet<>();
        for (L r : expected) want.add(r.pos());
        List<L> got = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<byte[], byte[]> c = reader(isolation, null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + timeoutMs;
            long quietSince = -1;
            while (System.currentTimeMillis() < deadline) {
                int n = 0;
                for (ConsumerRecord<byte[], byte[]> m : c.poll(Duration.ofMillis(200))) {
                    n++;
                    L r = new L("?", null, m.partition(), m.offset(),
                        m.key() == null ? "" : new String(m.key(), StandardCharsets.UTF_8),
                        m.value() == null ? "" : new String(m.value(), StandardCharsets.UTF_8));
                    got.add(r);
                    seen.add(r.pos());
                }
                if (seen.containsAll(want)) {
                    if (n > 0) quietSince = -1;
                    else if (quietSince < 0) quietSince = System.currentTimeMillis();
                    else if (System.currentTimeMillis() - quietSince >= IDLE_MS) break;
                }
            }
        }
        return got;
    }

    /** got must be exactly the ledger records with a status in want, once each, in offset order. */
    static List<String> compare(List<L> got, List<L> ledger, Set<String> want, String label) {
        List<String> problems = new ArrayList<>();
        Map<String, L> byPos = new HashMap<>();
        for (L r : ledger) byPos.put(r.pos(), r);
        Set<String> seen = new HashSet<>();
        Map<Integer, Long> last = new HashMap<>();
        List<String> foreign = new ArrayList<>(), wrong = new ArrayList<>();
        for (L g : got) {
            if (!seen.add(g.pos())) {
                problems.add(g.pos() + " read twice");
                continue;
            }
            Long prev = last.put(g.p, g.o);
            if (prev != null && prev >= g.o) problems.add("p" + g.p + ": offset " + g.o + " read after " + prev);
            L r = byPos.get(g.pos());
            if (r == null) foreign.add(g.pos() + " " + g.v);
            else if (!want.contains(r.status)) wrong.add(g.pos() + " " + g.v + " (" + r.status + " transaction " + r.txn + ")");
            else if (!r.k.equals(g.k) || !r.v.equals(g.v)) {
                problems.add(g.pos() + " is " + g.k + "=" + g.v + ", the producer wrote " + r.k + "=" + r.v);
            }
        }
        if (!wrong.isEmpty()) {
            problems.add(0, wrong.size() + " records of " + label + " read (first: " + wrong.subList(0, Math.min(3, wrong.size())) + ")");
        }
        if (!foreign.isEmpty()) {
            problems.add(0, foreign.size() + " records nobody acknowledged (first: " + foreign.subList(0, Math.min(3, foreign.size())) + ")");
        }
        List<String> missing = new ArrayList<>();
        for (L r : ledger) if (want.contains(r.status) && !seen.contains(r.pos())) missing.add(r.pos() + " " + r.v);
        if (!missing.isEmpty()) {
            problems.add(0, missing.size() + " expected records missing (first: " + missing.subList(0, Math.min(3, missing.size())) + ")");
        }
        return problems;
    }

    static List<L> only(List<L> recs, String status) {
        List<L> out = new ArrayList<>();
        for (L r : recs) if (r.status.equals(status)) out.add(r);
        return out;
    }

    /** The read_committed end offsets (ListOffsets latest, isolation READ_COMMITTED: the LSO). */
    Map<Integer, Long> lso(Admin admin, String topic, int partitions) throws Exception {
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (int i = 0; i < partitions; i++) req.put(new TopicPartition(topic, i), OffsetSpec.latest());
        Map<Integer, Long> out = new TreeMap<>();
        get(admin.listOffsets(req, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all())
            .forEach((tp, info) -> out.put(tp.partition(), info.offset()));
        return out;
    }

    static boolean fencedError(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ProducerFencedException || c instanceof InvalidProducerEpochException) return true;
        }
        return false;
    }

    String counts(List<L> recs) {
        Map<String, Integer> n = new TreeMap<>();
        for (L r : recs) n.merge(r.status, 1, Integer::sum);
        return n.toString();
    }

    // ------------------------------------------------------------------ produce

    boolean produce() throws Exception {
        String suffix = System.currentTimeMillis() / 1000 + "-" + Long.toHexString(Double.doubleToLongBits(Math.random())).substring(0, 6);
        st.setProperty("out", "compat-java-txn-out-" + suffix);
        st.setProperty("in", "compat-java-txn-in-" + suffix);
        st.setProperty("open", "compat-java-txn-open-" + suffix);
        st.setProperty("group", "compat-java-txn-group-" + suffix);
        for (String t : new String[] {"main", "zombie", "fence", "timeout", "ctp", "open"}) {
            st.setProperty("tid." + t, "compat-java-txn-" + t + "-" + suffix);
        }
        saveState();
        System.err.println("# topics " + out() + " " + in() + " " + open());
        try (Admin admin = admin()) {
            try {
                doProduce(admin);
            } catch (Stop s) {
                return false;
            } finally {
                saveLedger("out", ledger);
                saveState();
            }
        }
        return true;
    }

    void doProduce(Admin admin) throws Exception {
        List<String> problems = new ArrayList<>();
        try {
            get(admin.createTopics(List.of(new NewTopic(out(), PARTITIONS, REPLICATION_FACTOR),
                new NewTopic(in(), PARTITIONS, REPLICATION_FACTOR), new NewTopic(open(), 1, REPLICATION_FACTOR))).all());
            st.setProperty("created", "true");
            String why = waitFor(30000, () -> {
                try {
                    String w = checkTopic(admin, out(), PARTITIONS);
                    if (w == null) w = checkTopic(admin, in(), PARTITIONS);
                    if (w == null) w = checkTopic(admin, open(), 1);
                    return w;
                } catch (Exception e) {
                    return why(e);
                }
            });
            if (why != null) problems.add(why);
        } catch (Exception e) {
            problems.add("CreateTopics: " + why(e));
        }
        check("txn_create_topics", problems, true, null);

        KafkaProducer<byte[], byte[]> p = txnProducer(st.getProperty("tid.main"), "main", 60000);
        long t0 = System.currentTimeMillis();
        try {
            p.initTransactions();
            check("txn_init", List.of(), true, "initTransactions took " + (System.currentTimeMillis() - t0) + " ms, producer "
                + producerIdOf(p));
        } catch (Exception e) {
            check("txn_init", List.of("initTransactions: " + why(e)), true, null);
        }

        String[][] txns = {{"c1", "c", "txn_commit"}, {"a1", "a", "txn_abort"}, {"c2", "c", "txn_commit_after_abort"},
            {"a2", "a", "txn_abort_again"}, {"c3", "c", "txn_commit_again"}};
        for (String[] t : txns) {
            problems = new ArrayList<>();
            boolean commit = t[1].equals("c");
            List<L> recs = new ArrayList<>();
            try {
                p.beginTransaction();
                List<Future<RecordMetadata>> fs = send(p, out(), t[0], TXN_RECORDS, PARTITIONS);
                p.flush();
                recs = acked(fs, t[0], commit ? "committed" : "aborted", problems);
                if (commit) p.commitTransaction(); else p.abortTransaction();
            } catch (Exception e) {
                problems.add((commit ? "commit" : "abort") + ": " + why(e));
            }
            ledger.addAll(recs);
            if (problems.isEmpty() && recs.size() != TXN_RECORDS) problems.add(recs.size() + " of " + TXN_RECORDS + " acknowledged");
            check(t[2], problems, true, null);
        }

        openTransaction(admin, p);
        p.close();
        zombie();
        fenceByAdmin(admin);
        timeoutAbort(admin);
        ctp();
    }

    /** txn_open_invisible, txn_admin_describe / list / describe_producers, txn_open_visible_after_commit. */
    void openTransaction(Admin admin, KafkaProducer<byte[], byte[]> p) throws Exception {
        List<String> problems = new ArrayList<>();
        List<L> openRecs;
        try {
            p.beginTransaction();
            List<Future<RecordMetadata>> fs = send(p, out(), "o1", 9, PARTITIONS);
            p.flush();
            openRecs = acked(fs, "o1", "open", problems);
        } catch (Exception e) {
            check("txn_open_invisible", List.of("begin/send: " + why(e)), true, null);
            return;
        }
        require("txn_open_invisible", problems);
        Map<Integer, Long> first = new TreeMap<>();
        for (L r : openRecs) first.merge(r.p, r.o, Math::min);
        List<L> plain = plain(out(), "plain1", 6, PARTITIONS, problems);
        List<L> pending = new ArrayList<>(ledger);
        pending.addAll(openRecs);
        for (L r : plain) pending.add(r.with("after-open"));
        Map<Integer, Long> lso = lso(admin, out(), PARTITIONS);
        if (!lso.equals(first)) {
            problems.add("ListOffsets latest read_committed " + lso + ", expected the open transaction's first offsets " + first);
        }
        problems.addAll(compare(read(out(), PARTITIONS, "read_committed", only(ledger, "committed"), READ_MS), pending,
            Set.of("committed"), "the open transaction or after it"));
        for (String x : compare(read(out(), PARTITIONS, "read_uncommitted", pending, READ_MS), pending,
            Set.of("committed", "aborted", "open", "after-open"), "?")) {
            problems.add("read_uncommitted: " + x);
        }
        check("txn_open_invisible", problems, false, "open transaction first offsets " + first);

        // -- the admin client's view of the open transaction
        String tid = st.getProperty("tid.main");
        problems = new ArrayList<>();
        try {
            TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
            Set<TopicPartition> want = new HashSet<>();
            for (int i = 0; i < PARTITIONS; i++) want.add(new TopicPartition(out(), i));
            if (d.state() != TransactionState.ONGOING) problems.add("state " + d.state() + ", expected Ongoing");
            if (!d.topicPartitions().equals(want)) problems.add("partitions " + d.topicPartitions() + ", expected " + want);
            if (d.transactionTimeoutMs() != 60000) problems.add("timeout " + d.transactionTimeoutMs() + " ms, expected 60000");
            if (d.transactionStartTimeMs().isEmpty()) problems.add("no transaction start time");
            if (d.producerId() < 0) problems.add("producer id " + d.producerId());
            st.setProperty("main.pid", String.valueOf(d.producerId()));
            check("txn_admin_describe", problems, false, "producer " + d.producerId() + "/" + d.producerEpoch()
                + " coordinator " + d.coordinatorId());
        } catch (Exception e) {
            check("txn_admin_describe", List.of("describeTransactions: " + why(e)), false, null);
        }
        problems = new ArrayList<>();
        try {
            Collection<TransactionListing> all = get(admin.listTransactions().all());
            Collection<TransactionListing> ongoing = get(admin.listTransactions(
                new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING))).all());
            Collection<TransactionListing> aborting = get(admin.listTransactions(
                new ListTransactionsOptions().filterStates(List.of(TransactionState.COMPLETE_ABORT))).all());
            TransactionListing mine = null;
            for (TransactionListing l : all) if (l.transactionalId().equals(tid)) mine = l;
            if (mine == null) problems.add(tid + " not listed by listTransactions()");
            else if (mine.state() != TransactionState.ONGOING) problems.add("listed as " + mine.state() + ", expected Ongoing");
            if (ongoing.stream().noneMatch(l -> l.transactionalId().equals(tid))) problems.add("not listed with the Ongoing filter");
            if (aborting.stream().anyMatch(l -> l.transactionalId().equals(tid))) problems.add("listed with the CompleteAbort filter");
            if (mine != null && String.valueOf(mine.producerId()).equals(st.getProperty("main.pid")) == false) {
                problems.add("listed producer id " + mine.producerId() + ", described " + st.getProperty("main.pid"));
            }
            check("txn_admin_list", problems, false, all.size() + " transactional ids listed");
        } catch (Exception e) {
            check("txn_admin_list", List.of("listTransactions: " + why(e)), false, null);
        }
        problems = new ArrayList<>();
        try {
            TopicPartition tp0 = new TopicPartition(out(), 0);
            List<ProducerState> ps = get(admin.describeProducers(List.of(tp0)).partitionResult(tp0)).activeProducers();
            ProducerState mine = null;
            for (ProducerState s : ps) if (String.valueOf(s.producerId()).equals(st.getProperty("main.pid"))) mine = s;
            if (mine == null) {
                problems.add("producer " + st.getProperty("main.pid") + " not among the active producers " + ps);
            } else {
                if (mine.currentTransactionStartOffset().isEmpty() || mine.currentTransactionStartOffset().getAsLong() != first.get(0)) {
                    problems.add("current transaction start offset " + mine.currentTransactionStartOffset() + ", expected " + first.get(0));
                }
                if (mine.lastSequence() < 0) problems.add("last sequence " + mine.lastSequence());
            }
            long others = ps.stream().filter(s -> s.currentTransactionStartOffset().isPresent()).count();
            if (others != 1) problems.add(others + " producers with an open transaction on partition 0, expected 1: " + ps);
            check("txn_admin_describe_producers", problems, false, ps.size() + " active producers on partition 0");
        } catch (Exception e) {
            check("txn_admin_describe_producers", List.of("describeProducers: " + why(e)), false, null);
        }

        problems = new ArrayList<>();
        try {
            p.commitTransaction();
        } catch (Exception e) {
            problems.add("commit: " + why(e));
        }
        for (L r : openRecs) ledger.add(r.with("committed"));
        ledger.addAll(plain);
        if (problems.isEmpty()) {
            problems.addAll(compare(read(out(), PARTITIONS, "read_committed", only(ledger, "committed"), READ_MS), ledger,
                Set.of("committed"), "aborted transactions"));
            String w = waitFor(10000, () -> {
                try {
                    TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
                    if (d.state() != TransactionState.COMPLETE_COMMIT || !d.topicPartitions().isEmpty()) {
                        return "describeTransactions after the commit: " + d.state() + " " + d.topicPartitions()
                            + ", expected CompleteCommit with no partitions";
                    }
                    return null;
                } catch (Exception e) {
                    return "describeTransactions after the commit: " + why(e);
                }
            });
            if (w != null) problems.add(w);
        }
        check("txn_open_visible_after_commit", problems, true, null);
    }

    /** txn_zombie_fenced, txn_fenced_successor_commits. */
    void zombie() throws Exception {
        String tid = st.getProperty("tid.zombie");
        List<String> problems = new ArrayList<>();
        KafkaProducer<byte[], byte[]> z1 = txnProducer(tid, "zombie1", 60000);
        KafkaProducer<byte[], byte[]> z2 = txnProducer(tid, "zombie2", 60000);
        String note;
        try {
            z1.initTransactions();
            z1.beginTransaction();
            List<Future<RecordMetadata>> fs = send(z1, out(), "z1", 6, PARTITIONS);
            z1.flush();
            ledger.addAll(acked(fs, "z1", "aborted", problems));
            require("txn_zombie_fenced", problems);
            long t0 = System.currentTimeMillis();
            z2.initTransactions();
            long init2 = System.currentTimeMillis() - t0;
            String sendErr = null, commitErr = null;
            List<L> late = new ArrayList<>();
            try {
                List<Future<RecordMetadata>> lf = send(z1, out(), "z1late", 3, PARTITIONS);
                z1.flush();
                List<String> errs = new ArrayList<>();
                late = acked(lf, "z1late", "aborted", errs);
                sendErr = errs.isEmpty() ? "no error" : errs.get(0);
            } catch (Exception e) {
                sendErr = why(e);
            }
            ledger.addAll(late);
            if (!late.isEmpty()) problems.add(late.size() + " records of the fenced producer acknowledged after the fence");
            try {
                z1.commitTransaction();
                problems.add("the fenced producer's commitTransaction succeeded");
            } catch (Exception e) {
                commitErr = why(e);
                if (!fencedError(e) && !(sendErr != null && sendErr.contains("ProducerFencedException")
                        || sendErr != null && sendErr.contains("InvalidProducerEpochException"))) {
                    problems.add("the fenced producer's commitTransaction failed with " + commitErr
                        + " (its send: " + sendErr + "), expected ProducerFencedException or InvalidProducerEpochException");
                }
            }
            note = "successor's initTransactions took " + init2 + " ms; fenced send: " + sendErr + "; fenced commit: " + commitErr;
        } catch (Stop s) {
            throw s;
        } catch (Exception e) {
            problems.add(why(e));
            note = null;
        } finally {
            z1.close(Duration.ofSeconds(5));
        }
        check("txn_zombie_fenced", problems, true, note);
        problems = new ArrayList<>();
        try {
            z2.beginTransaction();
            List<Future<RecordMetadata>> fs = send(z2, out(), "z2", 6, PARTITIONS);
            z2.flush();
            ledger.addAll(acked(fs, "z2", "committed", problems));
            z2.commitTransaction();
        } catch (Exception e) {
            problems.add(why(e));
        } finally {
            z2.close(Duration.ofSeconds(5));
        }
        if (problems.isEmpty()) {
            problems.addAll(compare(read(out(), PARTITIONS, "read_committed", only(ledger, "committed"), READ_MS), ledger,
                Set.of("committed"), "the fenced producer"));
        }
        check("txn_fenced_successor_commits", problems, true, null);
    }

    /**
     * txn_admin_fence_producers: Admin.fenceProducers (InitProducerId for the id) fences a producer
     * with an open transaction: its transaction is aborted, the id ends up Empty with a newer epoch.
     */
    void fenceByAdmin(Admin admin) throws Exception {
        String tid = st.getProperty("tid.fence");
        List<String> problems = new ArrayList<>();
        String note = null;
        try (KafkaProducer<byte[], byte[]> p = txnProducer(tid, "fence", 60000)) {
            p.initTransactions();
            p.beginTransaction();
            List<Future<RecordMetadata>> fs = send(p, out(), "f1", 3, PARTITIONS);
            p.flush();
            ledger.addAll(acked(fs, "f1", "aborted", problems));
            TransactionDescription before = get(admin.describeTransactions(List.of(tid)).description(tid));
            get(admin.fenceProducers(List.of(tid)).all());
            try {
                p.commitTransaction();
                problems.add("commitTransaction succeeded after fenceProducers");
            } catch (Exception e) {
                note = "commit after fenceProducers: " + why(e);
                if (!fencedError(e)) problems.add("commit after fenceProducers failed with " + why(e) + ", expected ProducerFencedException");
            }
            String w = waitFor(10000, () -> {
                try {
                    TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
                    if (d.state() != TransactionState.EMPTY || d.producerEpoch() <= before.producerEpoch()
                            || d.producerId() != before.producerId()) {
                        return "describeTransactions after fenceProducers: " + d.state() + " producer " + d.producerId() + "/"
                            + d.producerEpoch() + ", expected Empty with a newer epoch than " + before.producerId() + "/"
                            + before.producerEpoch() + " (" + before.state() + ")";
                    }
                    return null;
                } catch (Exception e) {
                    return "describeTransactions after fenceProducers: " + why(e);
                }
            });
            if (w != null) problems.add(w);
        } catch (Exception e) {
            problems.add(why(e));
        }
        check("txn_admin_fence_producers", problems, false, note);
    }

    /** txn_timeout_abort: a transaction older than transaction.timeout.ms is aborted by the coordinator. */
    void timeoutAbort(Admin admin) throws Exception {
        String tid = st.getProperty("tid.timeout");
        List<String> problems = new ArrayList<>();
        String note = null;
        try (KafkaProducer<byte[], byte[]> p = txnProducer(tid, "timeout", TIMEOUT_TXN_MS)) {
            p.initTransactions();
            p.beginTransaction();
            List<Future<RecordMetadata>> fs = send(p, out(), "t1", 3, PARTITIONS);
            p.flush();
            ledger.addAll(acked(fs, "t1", "aborted", problems));
            long t0 = System.currentTimeMillis();
            // Kafka checks every transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s)
            String w = waitFor(40000, () -> {
                try {
                    TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
                    return d.state() == TransactionState.COMPLETE_ABORT ? null : "state " + d.state();
                } catch (Exception e) {
                    return why(e);
                }
            });
            long took = System.currentTimeMillis() - t0;
            if (w != null) problems.add("not aborted " + took + " ms after the send (timeout " + TIMEOUT_TXN_MS + " ms): " + w);
            Map<Integer, Long> lso = lso(admin, out(), PARTITIONS);
            Map<Integer, Long> end = new TreeMap<>();
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            for (int i = 0; i < PARTITIONS; i++) req.put(new TopicPartition(out(), i), OffsetSpec.latest());
            get(admin.listOffsets(req).all()).forEach((tp, info) -> end.put(tp.partition(), info.offset()));
            if (!lso.equals(end)) problems.add("last stable offsets " + lso + " after the timeout abort, expected the log ends " + end);
            try {
                p.commitTransaction();
                problems.add("commitTransaction succeeded after the coordinator aborted the transaction");
            } catch (Exception e) {
                note = "aborted " + took + " ms after the send; the late commit: " + why(e);
            }
        } catch (Exception e) {
            problems.add(why(e));
        }
        check("txn_timeout_abort", problems, false, note);
    }

    /** txn_ctp_input, txn_send_offsets. */
    void ctp() throws Exception {
        List<String> problems = new ArrayList<>();
        List<L> ins = plain(in(), "in", IN_RECORDS, PARTITIONS, problems);
        saveLedger("in", ins);
        check("txn_ctp_input", problems, true, null);
        Properties cp = consumerProps("txn-ctp", group());
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp);
             KafkaProducer<byte[], byte[]> p = txnProducer(st.getProperty("tid.ctp"), "ctp", 60000)) {
            p.initTransactions();
            c.subscribe(List.of(in()));
            Map<Integer, Long> r1 = ctpRound(c, p, CTP_FIRST, "ctp1", true, problems, null);
            if (r1 == null) {
                check("txn_send_offsets", problems, true, null);
                return;
            }
            Map<Integer, Long> got = committed(c);
            if (!got.equals(r1)) problems.add("after the committed round the group's offsets are " + got + ", expected " + r1);
            List<ConsumerRecord<byte[], byte[]>> aborted = new ArrayList<>();
            Map<Integer, Long> r2 = ctpRound(c, p, IN_RECORDS - CTP_FIRST, "ctp2", false, problems, aborted);
            if (r2 == null) {
                check("txn_send_offsets", problems, true, null);
                return;
            }
            got = committed(c);
            if (!got.equals(r1)) problems.add("after the aborted round the group's offsets are " + got + ", expected them unchanged at " + r1);
            for (TopicPartition tp : c.assignment()) c.seek(tp, got.getOrDefault(tp.partition(), 0L));
            List<ConsumerRecord<byte[], byte[]>> again = new ArrayList<>();
            if (ctpRound(c, p, IN_RECORDS - CTP_FIRST, "ctp3", true, problems, again) == null) {
                check("txn_send_offsets", problems, true, null);
                return;
            }
            Set<String> a = new HashSet<>(), b = new HashSet<>();
            for (ConsumerRecord<byte[], byte[]> m : aborted) a.add(m.partition() + "@" + m.offset());
            for (ConsumerRecord<byte[], byte[]> m : again) b.add(m.partition() + "@" + m.offset());
            if (!a.equals(b)) problems.add("after the rewind the consumer read " + b + ", expected the aborted round's inputs " + a);
            got = committed(c);
            Map<Integer, Long> ends = new TreeMap<>();
            for (int i = 0; i < PARTITIONS; i++) ends.put(i, (long) (IN_RECORDS / PARTITIONS));
            if (!got.equals(ends)) problems.add("after the last round the group's offsets are " + got + ", expected " + ends);
        } catch (Exception e) {
            problems.add(why(e));
        }
        if (problems.isEmpty()) {
            List<L> got = read(out(), PARTITIONS, "read_committed", only(ledger, "committed"), READ_MS);
            problems.addAll(compare(got, ledger, Set.of("committed"), "aborted transactions"));
            Map<String, Integer> outputs = new HashMap<>();
            for (L g : got) if (g.v.startsWith("ctp-")) outputs.merge(g.v.substring(4), 1, Integer::sum);
            for (L i : ins) {
                int n = outputs.getOrDefault(i.v, 0);
                if (n != 1) problems.add("input " + i.v + " is " + n + " times in the committed output");
            }
        }
        check("txn_send_offsets", problems, true, "ledger " + counts(ledger));
    }

    /** Reads n inputs, sends their outputs and the consumer's positions in one transaction. */
    Map<Integer, Long> ctpRound(KafkaConsumer<byte[], byte[]> c, KafkaProducer<byte[], byte[]> p, int n, String label,
                                boolean commit, List<String> problems, List<ConsumerRecord<byte[], byte[]>> keep) {
        List<ConsumerRecord<byte[], byte[]>> msgs = new ArrayList<>();
        long deadline = System.currentTimeMillis() + READ_MS;
        while (msgs.size() < n && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<byte[], byte[]> m : c.poll(Duration.ofMillis(200))) {
                if (msgs.size() < n) {
                    msgs.add(m);
                } else {
                    // max.poll.records=1: cannot happen; rewind so it is read again
                    c.seek(new TopicPartition(m.topic(), m.partition()), m.offset());
                }
            }
        }
        if (msgs.size() != n) {
            problems.add("round " + label + ": read " + msgs.size() + " of " + n + " inputs");
            return null;
        }
        if (keep != null) keep.addAll(msgs);
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        List<String> vals = new ArrayList<>();
        try {
            p.beginTransaction();
            for (ConsumerRecord<byte[], byte[]> m : msgs) {
                byte[] v = ("ctp-" + new String(m.value(), StandardCharsets.UTF_8)).getBytes(StandardCharsets.UTF_8);
                vals.add(new String(v, StandardCharsets.UTF_8));
                fs.add(p.send(new ProducerRecord<>(out(), m.partition(), null, m.key(), v,
                    List.of(new RecordHeader("txn", label.getBytes(StandardCharsets.UTF_8))))));
            }
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            Map<Integer, Long> pos = new TreeMap<>();
            for (TopicPartition tp : c.assignment()) {
                long o = c.position(tp);
                offsets.put(tp, new OffsetAndMetadata(o));
                pos.put(tp.partition(), o);
            }
            p.sendOffsetsToTransaction(offsets, c.groupMetadata());
            p.flush();
            for (int i = 0; i < fs.size(); i++) {
                RecordMetadata md = fs.get(i).get(OP.toMillis(), TimeUnit.MILLISECONDS);
                ConsumerRecord<byte[], byte[]> m = msgs.get(i);
                ledger.add(new L(commit ? "committed" : "aborted", label, md.partition(), md.offset(),
                    new String(m.key(), StandardCharsets.UTF_8), vals.get(i)));
            }
            if (commit) p.commitTransaction(); else p.abortTransaction();
            return pos;
        } catch (Exception e) {
            problems.add("round " + label + ": " + why(e));
            return null;
        }
    }

    /** The group's committed offsets on IN as a read_committed consumer fetches them (require_stable). */
    Map<Integer, Long> committed(KafkaConsumer<byte[], byte[]> c) {
        Set<TopicPartition> tps = new HashSet<>();
        for (int i = 0; i < PARTITIONS; i++) tps.add(new TopicPartition(in(), i));
        Map<Integer, Long> out = new TreeMap<>();
        c.committed(tps, Duration.ofSeconds(20)).forEach((tp, om) -> out.put(tp.partition(), om == null ? -1L : om.offset()));
        return out;
    }

    // ------------------------------------------------------------------ verify / restart-verify

    void reads() throws Exception {
        List<L> led = loadLedger("out");
        if (led.isEmpty()) {
            check("txn_read_committed", List.of("no ledger from the produce phase"), true, null);
        }
        List<L> got = read(out(), PARTITIONS, "read_committed", only(led, "committed"), READ_MS);
        check("txn_read_committed", compare(got, led, Set.of("committed"), "aborted transactions"), false,
            "read " + got.size() + " records; the log holds " + counts(led));
        got = read(out(), PARTITIONS, "read_uncommitted", led, READ_MS);
        check("txn_read_uncommitted", compare(got, led, Set.of("committed", "aborted"), "?"), false, "read " + got.size());
        List<String> problems = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = reader("read_committed", group())) {
            Map<Integer, Long> want = new TreeMap<>();
            for (int i = 0; i < PARTITIONS; i++) want.put(i, (long) (IN_RECORDS / PARTITIONS));
            Map<Integer, Long> have = committed(c);
            if (!have.equals(want)) problems.add("committed offsets " + have + ", expected " + want);
        } catch (Exception e) {
            problems.add(why(e));
        }
        check("txn_offsets_committed", problems, false, null);
    }

    boolean verify() throws Exception {
        if (!loadState()) {
            fail("txn_read_committed", "no state from the produce phase");
            return false;
        }
        try (Admin admin = admin()) {
            reads();
            // leave a transaction open on OPEN: no close() (it would abort), the JVM just exits
            List<String> problems = new ArrayList<>();
            KafkaProducer<byte[], byte[]> p = txnProducer(st.getProperty("tid.open"), "open", OPEN_TXN_TIMEOUT_MS);
            List<L> recs = new ArrayList<>();
            try {
                p.initTransactions();
                p.beginTransaction();
                List<Future<RecordMetadata>> fs = send(p, open(), "open", OPEN_RECORDS, 1);
                p.flush();
                recs.addAll(acked(fs, "open", "open", problems));
                st.setProperty("open.since", String.valueOf(System.currentTimeMillis()));
                for (L r : plain(open(), "plain-open", 2, 1, problems)) recs.add(r.with("after-open"));
                saveLedger("open", recs);
                saveState();
                long first = recs.stream().filter(r -> r.status.equals("open")).mapToLong(r -> r.o).min().orElse(-1);
                long lso = lso(admin, open(), 1).get(0);
                if (lso != first) problems.add("last stable offset " + lso + ", expected " + first + " (the open transaction)");
            } catch (Exception e) {
                problems.add(why(e));
            }
            check("txn_leave_open", problems, true, OPEN_RECORDS + " records in an open transaction, then 2 plain records");
            return true;
        } catch (Stop s) {
            return false;
        }
    }

    void restartVerify() throws Exception {
        if (!loadState()) {
            fail("txn_read_committed", "no state from the produce phase");
            return;
        }
        try (Admin admin = admin()) {
            reads();
            List<L> recs = loadLedger("open");
            if (recs.isEmpty()) check("txn_open_after_restart", List.of("no open transaction from the verify phase"), true, null);
            long first = recs.stream().filter(r -> r.status.equals("open")).mapToLong(r -> r.o).min().orElse(-1);
            long age = System.currentTimeMillis() - Long.parseLong(st.getProperty("open.since", "0"));
            if (age > OPEN_TXN_TIMEOUT_MS - 30000) {
                skip("txn_open_after_restart", "the transaction was left open " + age / 1000 + " s ago, too close to its timeout");
            } else {
                List<String> problems = new ArrayList<>();
                long lso = lso(admin, open(), 1).get(0);
                if (lso != first) problems.add("last stable offset " + lso + " after the restart, expected " + first);
                problems.addAll(compare(read(open(), 1, "read_committed", List.of(), 5000), recs, Set.of(),
                    "the open transaction or after it"));
                String tid = st.getProperty("tid.open");
                try {
                    TransactionDescription d = get(admin.describeTransactions(List.of(tid)).description(tid));
                    if (d.state() != TransactionState.ONGOING) problems.add("describeTransactions: " + d.state() + ", expected Ongoing");
                } catch (Exception e) {
                    problems.add("describeTransactions: " + why(e));
                }
                check("txn_open_after_restart", problems, false, "open for " + age / 1000 + " s");
            }
            List<String> problems = new ArrayList<>();
            List<L> led = new ArrayList<>();
            for (L r : recs) led.add(r.with(r.status.equals("open") ? "aborted" : "committed"));
            long t0 = System.currentTimeMillis();
            try (KafkaProducer<byte[], byte[]> p = txnProducer(st.getProperty("tid.open"), "open-again", 60000)) {
                p.initTransactions();
                p.beginTransaction();
                List<Future<RecordMetadata>> fs = send(p, open(), "after-restart", 3, 1);
                p.flush();
                led.addAll(acked(fs, "after-restart", "committed", problems));
                p.commitTransaction();
            } catch (Exception e) {
                problems.add(why(e));
            }
            if (problems.isEmpty()) {
                problems.addAll(compare(read(open(), 1, "read_committed", only(led, "committed"), READ_MS), led,
                    Set.of("committed"), "the transaction left open"));
            }
            check("txn_abort_open_by_init", problems, false, "initTransactions .. commit took " + (System.currentTimeMillis() - t0) + " ms");
        } catch (Stop s) {
            // reported
        }
    }

    void cleanup() throws Exception {
        if (!loadState()) {
            fail("txn_delete_topics", "no state from the produce phase");
            return;
        }
        try (Admin admin = admin()) {
            List<String> problems = new ArrayList<>();
            try {
                get(admin.deleteConsumerGroups(List.of(group())).all());
            } catch (Exception e) {
                boolean notFound = false;
                for (Throwable c = e; c != null; c = c.getCause()) notFound |= c instanceof GroupIdNotFoundException;
                if (!notFound) problems.add("deleteConsumerGroups: " + why(e));
            }
            check("txn_delete_group", problems, false, null);
            problems = new ArrayList<>();
            if (!"true".equals(st.getProperty("created"))) {
                problems.add("the topics were not created in the produce phase");
            } else {
                List<String> topics = List.of(out(), in(), open());
                try {
                    get(admin.deleteTopics(topics).all());
                    String w = waitFor(20000, () -> {
                        try {
                            Set<String> names = get(admin.listTopics().names());
                            List<String> left = new ArrayList<>();
                            for (String t : topics) if (names.contains(t)) left.add(t);
                            return left.isEmpty() ? null : left + " still listed";
                        } catch (Exception e) {
                            return why(e);
                        }
                    });
                    if (w != null) problems.add(w);
                } catch (Exception e) {
                    problems.add("deleteTopics: " + why(e));
                }
            }
            check("txn_delete_topics", problems, false, null);
        } catch (Stop s) {
            // reported
        }
    }
}
