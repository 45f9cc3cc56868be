// BenchDriver: runs Kafka's own load generators (org.apache.kafka.tools.ProducerPerformance,
// ConsumerPerformance, EndToEndLatency from the kafka-tools jar) inside one long-lived JVM,
// so that each measured run is made by a warm client rather than by a JVM that spends its
// first seconds loading classes and compiling. scripts/bench/bench.py starts one driver per
// broker (the same for both) and pins it to the load-generator cpus.
//
// Protocol (stdin, one command per line, fields separated by TAB):
//   <output file> TAB <tool> TAB <arg> ... [TAB --next-- TAB <tool> TAB <arg> ...]
// <tool> is pp (ProducerPerformance), cp (ConsumerPerformance) or e2e (EndToEndLatency).
// The jobs of one line run concurrently, each in its own thread; everything a job prints
// (from its thread or from threads it starts, e.g. the producer's I/O thread) goes to
// <output file>.<index>. When all are done the driver prints "DONE <exit code>..." on stdout.
// Exit.exit in a tool ends only that job (its exit code is reported).
//
// Build: javac -cp "<kafka libs>/*" -d <dir> BenchDriver.java
import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public class BenchDriver {
    static final class JobExit extends RuntimeException {
        final int code;

        JobExit(int code) {
            super("exit " + code, null, false, false);
            this.code = code;
        }
    }

    /** System.out / System.err: each job's threads write to that job's file. */
    static final class Dispatch extends OutputStream {
        static final InheritableThreadLocal<PrintStream> TARGET = new InheritableThreadLocal<>();
        final PrintStream fallback;

        Dispatch(PrintStream fallback) {
            this.fallback = fallback;
        }

        PrintStream target() {
            PrintStream t = TARGET.get();
            return t != null ? t : fallback;
        }

        @Override
        public void write(int b) {
            target().write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            target().write(b, off, len);
        }

        @Override
        public void flush() {
            target().flush();
        }
    }

    static int runJob(String tool, String[] args) throws Exception {
        try {
            switch (tool) {
                case "pp":
                    org.apache.kafka.tools.ProducerPerformance.main(args);
                    return 0;
                case "cp":
                    org.apache.kafka.tools.ConsumerPerformance.main(args);
                    return 0;
                case "e2e":
                    org.apache.kafka.tools.EndToEndLatency.main(args);
                    return 0;
                default:
                    System.out.println("BenchDriver: unknown tool " + tool);
                    return 2;
            }
        } catch (JobExit e) {
            return e.code;
        }
    }

    public static void main(String[] argv) throws Exception {
        PrintStream control = new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), true);
        PrintStream errFallback = System.err;
        org.apache.kafka.common.utils.Exit.setExitProcedure((code, msg) -> {
            throw new JobExit(code);
        });
        org.apache.kafka.common.utils.Exit.setHaltProcedure((code, msg) -> {
            throw new JobExit(code);
        });
        System.setOut(new PrintStream(new Dispatch(errFallback), true));
        System.setErr(new PrintStream(new Dispatch(errFallback), true));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        control.println("READY");
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            String out = f[0];
            List<List<String>> jobs = new ArrayList<>();
            List<String> cur = new ArrayList<>();
            for (int i = 1; i < f.length; i++) {
                if (f[i].equals("--next--")) {
                    jobs.add(cur);
                    cur = new ArrayList<>();
                } else {
                    cur.add(f[i]);
                }
            }
            jobs.add(cur);
            int[] codes = new int[jobs.size()];
            Thread[] threads = new Thread[jobs.size()];
            List<PrintStream> files = new ArrayList<>();
            for (int j = 0; j < jobs.size(); j++) {
                final int idx = j;
                final List<String> job = jobs.get(j);
                final PrintStream ps = new PrintStream(new FileOutputStream(out + "." + j, true), true);
                files.add(ps);
                threads[j] = new Thread(() -> {
                    Dispatch.TARGET.set(ps);
                    try {
                        String[] a = job.subList(1, job.size()).toArray(new String[0]);
                        codes[idx] = runJob(job.get(0), a);
                    } catch (Throwable t) {
                        t.printStackTrace(ps);
                        codes[idx] = 1;
                    } finally {
                        ps.flush();
                    }
                }, "bench-job-" + j);
                threads[j].start();
            }
            for (Thread t : threads) t.join();
            for (PrintStream ps : files) ps.close();
            StringBuilder sb = new StringBuilder("DONE");
            for (int c : codes) sb.append(' ').append(c);
            control.println(sb);
        }
    }
}
