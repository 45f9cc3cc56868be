package compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Commit latency of transactions, for scripts/bench-txn.sh (kafka-producer-perf-test reports
 * send latencies only).
 *
 * <pre>
 * java -cp compat-java.jar compat.TxnLatency BOOTSTRAP TOPIC PARTITIONS TRANSACTIONS RECORDS_PER_TXN
 * </pre>
 *
 * One transactional producer (acks=all, linger.ms 0), WARMUP transactions first, then
 * TRANSACTIONS transactions of RECORDS_PER_TXN 100-byte records spread over the partitions; per
 * transaction the time of commitTransaction() alone (EndTxn: the coordinator's prepare write,
 * the answer; markers are written after it) and of the whole transaction (begin .. commit
 * returned). Prints one line:
 * {@code commit_ms p50=.. p99=.. max=.. avg=.. txn_ms p50=.. p99=.. txns_per_s=..}.
 */
public final class TxnLatency {
    static final int WARMUP = 20;

    private TxnLatency() {}

    static double pct(List<Long> sortedNs, double q) {
        int i = (int) Math.ceil(q * sortedNs.size()) - 1;
        return sortedNs.get(Math.max(0, Math.min(sortedNs.size() - 1, i))) / 1e6;
    }

    public static void main(String[] a) throws Exception {
        if (a.length != 5) {
            System.err.println("usage: TxnLatency BOOTSTRAP TOPIC PARTITIONS TRANSACTIONS RECORDS_PER_TXN");
            System.exit(2);
        }
        int partitions = Integer.parseInt(a[2]);
        int txns = Integer.parseInt(a[3]);
        int per = Integer.parseInt(a[4]);
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "bench-txn-latency-" + System.nanoTime());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        byte[] value = new byte[100];
        java.util.Arrays.fill(value, (byte) 'x');
        List<Long> commit = new ArrayList<>();
        List<Long> whole = new ArrayList<>();
        long t0 = 0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            for (int n = 0; n < WARMUP + txns; n++) {
                if (n == WARMUP) t0 = System.nanoTime();
                long begin = System.nanoTime();
                producer.beginTransaction();
                for (int i = 0; i < per; i++) {
                    producer.send(new ProducerRecord<>(a[1], (n + i) % partitions, null,
                        ("k" + i).getBytes(StandardCharsets.UTF_8), value));
                }
                producer.flush();
                long c = System.nanoTime();
                producer.commitTransaction();
                long end = System.nanoTime();
                if (n >= WARMUP) {
                    commit.add(end - c);
                    whole.add(end - begin);
                }
            }
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        Collections.sort(commit);
        Collections.sort(whole);
        double avg = commit.stream().mapToLong(Long::longValue).average().orElse(0) / 1e6;
        System.out.printf("commit_ms p50=%.2f p99=%.2f max=%.2f avg=%.2f txn_ms p50=%.2f p99=%.2f txns_per_s=%.1f%n",
            pct(commit, 0.5), pct(commit, 0.99), pct(commit, 1.0), avg, pct(whole, 0.5), pct(whole, 0.99), txns / secs);
    }
}
