package compat.apps;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The word count: a plain Kafka Streams application, run by run.sh as its own JVM and stopped
 * with SIGTERM.
 *
 * <pre>
 *   input (String lines) -> flatMapValues(words) -> groupBy(word)   [APP-words-repartition]
 *                        -> count()  [RocksDB store word-counts, changelog APP-word-counts-changelog
 *                                     (compacted, CHANGELOG_CONFIGS)]
 *                        -> output (String word, Long count)
 * </pre>
 *
 * Usage: WordCountApp BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [at_least_once|exactly_once_v2]
 * (the processing guarantee, default at_least_once; exactly_once_v2: one transactional producer
 * per stream thread, offsets committed in its transactions, read_committed reads)
 * Environment: COMPAT_REPLICATION_FACTOR (replication.factor of the internal topics, default 1).
 *
 * Prints (stdout, besides the log) lines run.sh looks for:
 *   STATE old new                      every KafkaStreams state change
 *   RESTORED topic-partition store n   a restore from the changelog finished (n records)
 *   STOPPED clean | STOPPED error      before exiting (exit code 0 / 1)
 */
public final class WordCountApp {
    static final String STORE = "word-counts";
    static final String REPARTITION = "words";

    /**
     * The changelog's topic configs besides Streams' own (cleanup.policy=compact): small segments
     * and an eager cleaner, so the changelog is compacted within the run; the broker recompresses
     * it to lz4.
     */
    static final Map<String, String> CHANGELOG_CONFIGS = Map.of(
            "segment.ms", "500",
            "min.cleanable.dirty.ratio", "0.01",
            "min.compaction.lag.ms", "0",
            "delete.retention.ms", "60000",
            "compression.type", "lz4");

    private WordCountApp() {}

    /** The tokenizer (also used by AppsTool to compute the expected counts). */
    static List<String> words(String line) {
        List<String> out = new ArrayList<>();
        for (String w : line.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{N}]+")) {
            if (!w.isEmpty()) out.add(w);
        }
        return out;
    }

    static Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(WordCountApp::words)
                .groupBy((key, word) -> word, Grouped.with(REPARTITION, Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(STORE)
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long())
                        .withLoggingEnabled(CHANGELOG_CONFIGS))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5 && args.length != 6) {
            System.err.println("usage: WordCountApp BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [GUARANTEE]");
            System.exit(2);
        }
        String rf = System.getenv().getOrDefault("COMPAT_REPLICATION_FACTOR", "1");
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        String guarantee = args.length == 6 ? args[5] : StreamsConfig.AT_LEAST_ONCE;
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            System.err.println("guarantee: " + StreamsConfig.AT_LEAST_ONCE + " or " + StreamsConfig.EXACTLY_ONCE_V2);
            System.exit(2);
        }
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        System.out.println("GUARANTEE " + guarantee);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, rf);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        // short intervals: the scenario is a couple of seconds of data
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 1000);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Kafka's smallest session timeout (group.min.session.timeout.ms): Streams 4.1.1 does not
        // send LeaveGroup on close, even with leaveGroup(true), so the next run's JoinGroup waits
        // until the previous run's members have expired (45 s with the default)
        p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);

        Topology topology = topology(args[2], args[3]);
        System.out.println("TOPOLOGY " + topology.describe().toString().replace('\n', ' '));
        KafkaStreams streams = new KafkaStreams(topology, p);

        CountDownLatch done = new CountDownLatch(1);
        AtomicBoolean failed = new AtomicBoolean(false);
        streams.setStateListener((now, old) -> {
            System.out.println("STATE " + old + " " + now);
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                done.countDown();
            }
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                System.out.println("RESTORING " + tp + " " + store + " " + start + ".." + end);
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                System.out.println("RESTORED " + tp + " " + store + " " + total);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            e.printStackTrace(System.out);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Thread hook = new Thread(() -> {
            // asks to leave the group (which 4.1.1 does not do with the classic protocol, see
            // session.timeout.ms above)
            boolean clean = streams.close(new KafkaStreams.CloseOptions()
                    .leaveGroup(true).timeout(Duration.ofSeconds(30)));
            System.out.println(clean ? "STOPPED clean" : "STOPPED close timed out");
            System.out.flush();
            done.countDown();
        }, "wordcount-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        streams.start();
        done.await();
        if (failed.get()) {
            Runtime.getRuntime().removeShutdownHook(hook);
            streams.close(Duration.ofSeconds(10));
            System.out.println("STOPPED error");
            System.out.flush();
            System.exit(1);
        }
    }
}
