package compat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The transactional producer of scripts/chaos-txn.py (Java client: librdkafka 2.16's
 * send_offsets_to_transaction can hang for good once the group coordinator's broker leaves the
 * metadata, librdkafka issue 5511).
 *
 * <pre>
 * java -cp compat-java.jar compat.TxnChaosProducer BOOTSTRAP TOPIC PARTITIONS IN_TOPIC GROUP TRANSACTIONAL_ID ABORT_RATIO SEED
 * </pre>
 *
 * Runs transactions until a line "stop" (or the end of stdin) arrives, then ends the current one
 * and exits. Each transaction n has 5-40 records, value "t&lt;n&gt;-&lt;i&gt;" to partition (n + i) % PARTITIONS,
 * and sends offset n of IN_TOPIC/0 for GROUP (sendOffsetsToTransaction with the group's metadata,
 * generation -1: a group without members); ABORT_RATIO of them are aborted on purpose. Errors
 * as KafkaProducer documents: TimeoutException -> the same call again; ProducerFencedException,
 * OutOfOrderSequenceException, AuthorizationException, UnsupportedVersionException -> fatal: a
 * new producer with the same transactional.id; other KafkaExceptions -> abortTransaction. A
 * transaction whose commit failed fatally, or kept timing out, is "uncertain".
 *
 * stdout, one line each: {@code STAGE what}, {@code ERROR where ExceptionClass: message},
 * {@code RESTART why}, {@code TXN {"n":..,"status":"committed|aborted|uncertain","values":[..],
 * "acked":[[p,o,"v"],..]}}, {@code DONE}.
 */
public final class TxnChaosProducer {
    static final long RETRY_FOR_MS = 120_000;

    final String bootstrap;
    final String topic;
    final int partitions;
    final String inTopic;
    final String group;
    final String tid;
    final double abortRatio;
    final Random rng;
    final PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    final AtomicBoolean stop = new AtomicBoolean();
    KafkaProducer<byte[], byte[]> producer;

    TxnChaosProducer(String[] a) {
        bootstrap = a[0];
        topic = a[1];
        partitions = Integer.parseInt(a[2]);
        inTopic = a[3];
        group = a[4];
        tid = a[5];
        abortRatio = Double.parseDouble(a[6]);
        rng = new Random(Long.parseLong(a[7]));
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 8) {
            System.err.println("usage: TxnChaosProducer BOOTSTRAP TOPIC PARTITIONS IN_TOPIC GROUP TRANSACTIONAL_ID ABORT_RATIO SEED");
            System.exit(2);
        }
        TxnChaosProducer p = new TxnChaosProducer(args);
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.trim().equals("stop")) break;
                }
            } catch (Exception e) {
                // the end of stdin is a stop too
            }
            p.stop.set(true);
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();
        p.run();
        p.out.println("DONE");
        System.exit(0);
    }

    void stage(String s) {
        out.println("STAGE " + s);
    }

    void error(String where, Throwable e) {
        Throwable t = e;
        while (t instanceof ExecutionException && t.getCause() != null) t = t.getCause();
        out.println("ERROR " + where + " " + t.getClass().getSimpleName() + ": " + String.valueOf(t.getMessage()).replaceAll("\\s+", " "));
    }

    static boolean fatal(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof ProducerFencedException || c instanceof OutOfOrderSequenceException
                    || c instanceof AuthorizationException || c instanceof UnsupportedVersionException) {
                return true;
            }
        }
        // a producer already in a fatal state refuses every call with an IllegalStateException / KafkaException
        return e instanceof IllegalStateException;
    }

    void newProducer(String why) {
        if (producer != null) {
            out.println("RESTART " + why);
            try {
                producer.close(Duration.ZERO);
            } catch (Exception e) {
                // dropped either way
            }
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "txn-chaos");
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        long deadline = System.currentTimeMillis() + RETRY_FOR_MS;
        while (true) {
            producer = new KafkaProducer<>(p);
            try {
                stage("initTransactions");
                producer.initTransactions();
                return;
            } catch (TimeoutException e) {
                error("initTransactions", e);
                // the same call again, on the same producer: KafkaProducer allows it
                while (System.currentTimeMillis() < deadline) {
                    try {
                        producer.initTransactions();
                        return;
                    } catch (TimeoutException again) {
                        error("initTransactions", again);
                    } catch (KafkaException other) {
                        error("initTransactions", other);
                        break;
                    }
                }
            } catch (KafkaException e) {
                error("initTransactions", e);
            }
            producer.close(Duration.ZERO);
            if (System.currentTimeMillis() > deadline) {
                out.println("ERROR fatal initTransactions kept failing for " + RETRY_FOR_MS / 1000 + " s");
                System.exit(3);
            }
            sleep(500);
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    void run() {
        newProducer("start");
        for (int n = 1; !stop.get(); n++) one(n);
        producer.close(Duration.ofSeconds(10));
    }

    static String json(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    void report(int n, String status, List<String> values, List<String> acked) {
        StringBuilder sb = new StringBuilder("TXN {\"n\":").append(n).append(",\"status\":\"").append(status)
            .append("\",\"values\":[");
        for (int i = 0; i < values.size(); i++) sb.append(i > 0 ? "," : "").append(json(values.get(i)));
        sb.append("],\"acked\":[").append(String.join(",", acked)).append("]}");
        out.println(sb);
    }

    void one(int n) {
        List<String> values = new ArrayList<>();
        List<String> acked = new ArrayList<>();
        stage("beginTransaction t" + n);
        try {
            producer.beginTransaction();
        } catch (KafkaException | IllegalStateException e) {
            error("beginTransaction", e);
            report(n, "aborted", values, acked);
            newProducer("beginTransaction: " + e);
            return;
        }
        String failure = null;
        try {
            int count = 5 + rng.nextInt(36);
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            stage("send t" + n);
            for (int i = 0; i < count; i++) {
                String v = "t" + n + "-" + i;
                values.add(v);
                fs.add(producer.send(new ProducerRecord<>(topic, (n + i) % partitions, null, v.getBytes(StandardCharsets.UTF_8))));
            }
            stage("flush t" + n);
            producer.flush();
            for (int i = 0; i < fs.size(); i++) {
                try {
                    RecordMetadata md = fs.get(i).get(0, TimeUnit.MILLISECONDS);
                    acked.add("[" + md.partition() + "," + md.offset() + "," + json(values.get(i)) + "]");
                } catch (Exception e) {
                    if (failure == null) {
                        error("send", e);
                        failure = "send: " + e;
                    }
                }
            }
            if (failure == null) {
                stage("sendOffsetsToTransaction t" + n);
                producer.sendOffsetsToTransaction(Map.of(new TopicPartition(inTopic, 0), new OffsetAndMetadata(n)),
                    new ConsumerGroupMetadata(group));
            }
        } catch (KafkaException | IllegalStateException e) {
            error("in transaction", e);
            if (fatal(e)) {
                report(n, "aborted", values, acked);   // never asked to commit: it cannot commit
                newProducer("in transaction t" + n + ": " + e);
                return;
            }
            failure = String.valueOf(e);
        }
        if (failure != null || rng.nextDouble() < abortRatio) {
            abort(n, values, acked);
            return;
        }
        long deadline = System.currentTimeMillis() + RETRY_FOR_MS;
        while (true) {
            stage("commitTransaction t" + n);
            try {
                producer.commitTransaction();
                report(n, "committed", values, acked);
                return;
            } catch (TimeoutException e) {
                error("commitTransaction", e);
                if (System.currentTimeMillis() < deadline) continue;
                report(n, "uncertain", values, acked);
                newProducer("commitTransaction kept timing out");
                return;
            } catch (KafkaException | IllegalStateException e) {
                error("commitTransaction", e);
                if (fatal(e)) {
                    report(n, "uncertain", values, acked);
                    newProducer("commitTransaction t" + n + ": " + e);
                    return;
                }
                abort(n, values, acked);
                return;
            }
        }
    }

    void abort(int n, List<String> values, List<String> acked) {
        long deadline = System.currentTimeMillis() + RETRY_FOR_MS;
        while (true) {
            stage("abortTransaction t" + n);
            try {
                producer.abortTransaction();
                report(n, "aborted", values, acked);
                return;
            } catch (TimeoutException e) {
                error("abortTransaction", e);
                if (System.currentTimeMillis() < deadline) continue;
            } catch (KafkaException | IllegalStateException e) {
                error("abortTransaction", e);
            }
            // never committed: the new producer's initTransactions aborts it
            report(n, "aborted", values, acked);
            newProducer("abortTransaction t" + n + " failed");
            return;
        }
    }
}
