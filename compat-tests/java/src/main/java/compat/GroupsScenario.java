package compat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.WakeupException;

/**
 * Consumer-group scenario for the Java client (classic protocol, the client's default).
 *
 * <pre>
 * java -cp compat-java.jar compat.GroupsScenario BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
 * </pre>
 *
 * produce: a 6-partition topic, 20 records per partition (default idempotent producer).
 * verify: three consumers (one thread each, auto-commit off) share the partitions 2/2/2 and
 * read every record exactly once, then commitSync; one closes (LeaveGroup), the other two
 * commit in onPartitionsRevoked, take over 3/3 and read only the records produced after it
 * (group_commit_on_revoke, the one check python/scenario_groups.py lacks); the admin client lists and
 * describes the group, cannot delete it while it has members; 5 more records per partition
 * are produced after the last commit; the members close and the group is Empty.
 * restart-verify (after the broker restart): the committed offsets survived; a new member
 * reads exactly the 5 newer records per partition, commits, closes.
 * cleanup: the committed offsets (all and named partitions), DeleteGroups, DeleteTopics.
 * The same checks as python/scenario_groups.py, with the same names.
 */
public final class GroupsScenario extends Base {
    static final int PARTITIONS = 6;
    static final int FIRST = 20;     // per partition, produce phase
    static final int SECOND = 10;    // per partition, after one member left
    static final int TAIL = 5;       // per partition, after the last commit before the restart

    GroupsScenario(String bootstrap, Path stateDir) {
        super(bootstrap, stateDir);
    }

    @Override
    String stateName() {
        return "java-groups";
    }

    String group() {
        return st.getProperty("group");
    }

    public static void main(String[] args) throws Exception {
        String[] a = phaseArgs(args, "GroupsScenario", "all|produce|verify|restart-verify|cleanup");
        GroupsScenario s = new GroupsScenario(a[0], Path.of(a[2]));
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

    // ------------------------------------------------------------------ helpers

    /** Produces perPartition records to every partition; throws with the client's error. */
    void produceRecords(int perPartition, String tag) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = producer("groups-producer", "lz4", 5, 16384)) {
            Batch b = new Batch();
            for (int part = 0; part < PARTITIONS; part++) {
                for (int i = 0; i < perPartition; i++) {
                    Rec r = new Rec();
                    r.section = "group";
                    r.key = ("g-" + tag + "-" + part + "-" + i).getBytes(StandardCharsets.UTF_8);
                    r.value = r.key;
                    b.send(p, topic(), part, null, r);
                }
            }
            p.flush();
            String err = b.await();
            if (err != null) throw new IllegalStateException(err);
        }
    }

    TopicPartition tp(int p) {
        return new TopicPartition(topic(), p);
    }

    /** null when every (partition, offset) in [from, to) was consumed exactly once and nothing else. */
    String exactlyOnce(Map<TopicPartition, List<Long>> consumed, long from, long to) {
        List<String> problems = new ArrayList<>();
        for (int part = 0; part < PARTITIONS; part++) {
            List<Long> got;
            synchronized (consumed) {
                got = new ArrayList<>(consumed.getOrDefault(tp(part), List.of()));
            }
            Map<Long, Integer> count = new TreeMap<>();
            for (long o : got) count.merge(o, 1, Integer::sum);
            List<Long> missing = new ArrayList<>();
            List<Long> dup = new ArrayList<>();
            List<Long> extra = new ArrayList<>();
            for (long o = from; o < to; o++) {
                int n = count.getOrDefault(o, 0);
                if (n == 0) missing.add(o);
                if (n > 1) dup.add(o);
            }
            for (long o : count.keySet()) if (o < from || o >= to) extra.add(o);
            if (!missing.isEmpty() || !dup.isEmpty() || !extra.isEmpty()) {
                problems.add("partition " + part + (missing.isEmpty() ? "" : " missing offsets " + ranges(missing))
                    + (dup.isEmpty() ? "" : " read twice " + ranges(dup))
                    + (extra.isEmpty() ? "" : " not expected " + ranges(extra)));
            }
        }
        return problems.isEmpty() ? null : String.join("; ", problems);
    }

    static String ranges(List<Long> l) {
        if (l.isEmpty()) return "[]";
        StringBuilder sb = new StringBuilder("[");
        long start = l.get(0);
        long prev = start;
        for (int i = 1; i <= l.size(); i++) {
            if (i < l.size() && l.get(i) == prev + 1) {
                prev = l.get(i);
                continue;
            }
            if (sb.length() > 1) sb.append(", ");
            sb.append(start == prev ? String.valueOf(start) : start + ".." + prev);
            if (i < l.size()) {
                start = l.get(i);
                prev = start;
            }
        }
        return sb.append("]").toString();
    }

    static int total(Map<TopicPartition, List<Long>> consumed) {
        synchronized (consumed) {
            int n = 0;
            for (List<Long> l : consumed.values()) n += l.size();
            return n;
        }
    }

    /** null when the group's committed offset is `want` on every partition. */
    String committedProblem(Admin admin, long want) {
        try {
            Map<TopicPartition, OffsetAndMetadata> offs = get(admin.listConsumerGroupOffsets(group()).partitionsToOffsetAndMetadata());
            return offsetsProblem(offs, want, PARTITIONS);
        } catch (Exception e) {
            return "listConsumerGroupOffsets: " + why(e);
        }
    }

    String offsetsProblem(Map<TopicPartition, OffsetAndMetadata> offs, long want, int partitions) {
        List<String> bad = new ArrayList<>();
        for (int part = 0; part < partitions; part++) {
            OffsetAndMetadata om = offs.get(tp(part));
            if (om == null || om.offset() != want) bad.add("partition " + part + " at " + (om == null ? "none" : om.offset()));
        }
        return bad.isEmpty() ? null : "expected " + want + " on every partition, got " + String.join(", ", bad);
    }

    /** The group as ListGroups shows it: its state, or a complaint. */
    String listedState(Admin admin) throws Exception {
        Collection<GroupListing> all = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
        for (GroupListing g : all) {
            if (g.groupId().equals(group())) return g.groupState().map(GroupState::toString).orElse("(no state)");
        }
        return null;
    }

    /** ListGroups lists the group in `want` state, also with the states filter; null if so. */
    String listProblem(Admin admin, GroupState want) {
        try {
            String state = listedState(admin);
            if (state == null) return "listGroups does not list " + group();
            if (!state.equals(want.toString())) return "listGroups: " + group() + " is " + state + ", expected " + want;
            Collection<GroupListing> filtered = get(admin.listGroups(
                ListGroupsOptions.forConsumerGroups().inGroupStates(Set.of(want))).all());
            boolean in = filtered.stream().anyMatch(g -> g.groupId().equals(group()));
            if (!in) return "listGroups with the states filter [" + want + "] does not list " + group();
            GroupState other = want == GroupState.STABLE ? GroupState.EMPTY : GroupState.STABLE;
            Collection<GroupListing> none = get(admin.listGroups(
                ListGroupsOptions.forConsumerGroups().inGroupStates(Set.of(other))).all());
            if (none.stream().anyMatch(g -> g.groupId().equals(group()))) {
                return "listGroups with the states filter [" + other + "] lists " + group() + " (it is " + want + ")";
            }
            return null;
        } catch (Exception e) {
            return "listGroups: " + why(e);
        }
    }

    /** DescribeGroups: Stable, `members` members with `each` partitions each, range assignor. */
    String describeProblem(Admin admin, int members, int each, Set<String> clientIds) {
        try {
            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group())).all()).get(group());
            if (d.groupState() != GroupState.STABLE) return "state " + d.groupState() + ", expected STABLE";
            if (d.members().size() != members) return d.members().size() + " members, expected " + members + ": " + d.members();
            if (!"range".equals(d.partitionAssignor())) return "assignor '" + d.partitionAssignor() + "', expected range";
            Set<Integer> union = new HashSet<>();
            Set<String> ids = new HashSet<>();
            Set<String> clients = new TreeSet<>();
            for (MemberDescription m : d.members()) {
                if (m.consumerId() == null || m.consumerId().isEmpty() || !ids.add(m.consumerId())) {
                    return "member ids " + d.members();
                }
                clients.add(m.clientId());
                Set<TopicPartition> a = m.assignment().topicPartitions();
                if (a.size() != each) return "member " + m.clientId() + " has " + a + ", expected " + each + " partitions";
                for (TopicPartition tp : a) union.add(tp.partition());
            }
            if (union.size() != PARTITIONS) return "assignments cover partitions " + union;
            if (!clients.equals(new TreeSet<>(clientIds))) return "client ids " + clients + ", expected " + new TreeSet<>(clientIds);
            return null;
        } catch (Exception e) {
            return "describeConsumerGroups: " + why(e);
        }
    }

    // ------------------------------------------------------------------ members

    /** One member of the group on its own thread (KafkaConsumer is single-threaded). */
    final class Member implements Runnable {
        final String name;
        final Set<Integer> assigned = ConcurrentHashMap.newKeySet();
        /** (generation, partition, offset) of every record read; generation counts assignments. */
        final List<long[]> reads = Collections.synchronizedList(new ArrayList<>());
        final List<String> revokeCommits = Collections.synchronizedList(new ArrayList<>());
        final Thread thread;
        volatile int generation;
        volatile boolean stop;
        volatile boolean closed;
        volatile boolean commitOnRevoke;
        volatile boolean commitRequested;
        volatile String commitError;
        volatile String error;
        volatile KafkaConsumer<byte[], byte[]> consumer;

        Member(String name) {
            this.name = name;
            this.thread = new Thread(this, "member-" + name);
            this.thread.setDaemon(true);
        }

        String clientId() {
            return "compat-java-group-" + name;
        }

        @Override
        public void run() {
            KafkaConsumer<byte[], byte[]> c = null;
            try {
                c = consumer("group-" + name, group());
                consumer = c;
                final KafkaConsumer<byte[], byte[]> cc = c;
                c.subscribe(List.of(topic()), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                        // the usual eager-rebalance pattern: commit what was read before
                        // giving the partitions up (the group is PreparingRebalance now)
                        if (commitOnRevoke && !parts.isEmpty()) {
                            try {
                                cc.commitSync(Duration.ofSeconds(10));
                                revokeCommits.add("ok");
                            } catch (RuntimeException e) {
                                revokeCommits.add(why(e));
                            }
                        }
                        for (TopicPartition tp : parts) assigned.remove(tp.partition());
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                        for (TopicPartition tp : parts) assigned.add(tp.partition());
                        generation++;
                    }

                    @Override
                    public void onPartitionsLost(Collection<TopicPartition> parts) {
                        for (TopicPartition tp : parts) assigned.remove(tp.partition());
                    }
                });
                while (!stop) {
                    ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<byte[], byte[]> r : recs) reads.add(new long[] {generation, r.partition(), r.offset()});
                    if (commitRequested) {
                        try {
                            c.commitSync(Duration.ofSeconds(10));
                            commitError = null;
                        } catch (RuntimeException e) {
                            commitError = why(e);
                        }
                        commitRequested = false;
                    }
                }
            } catch (WakeupException e) {
                // asked to stop
            } catch (Exception e) {
                if (error == null) error = why(e);
            } finally {
                if (c != null) {
                    try {
                        c.close(Duration.ofSeconds(10));   // LeaveGroup
                    } catch (Exception e) {
                        if (error == null) error = "close: " + why(e);
                    }
                }
                assigned.clear();
                commitRequested = false;
                closed = true;
            }
        }

        /** (partition, offset) read since assignment generation `gen`. */
        List<long[]> since(int gen) {
            List<long[]> out = new ArrayList<>();
            synchronized (reads) {
                for (long[] r : reads) if (r[0] >= gen) out.add(new long[] {r[1], r[2]});
            }
            return out;
        }

        void stopAndJoin() {
            stop = true;
            join(20000);
            if (thread.isAlive() && consumer != null) {
                consumer.wakeup();
                join(5000);
            }
        }

        void join(long ms) {
            try {
                thread.join(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public String toString() {
            return name + "=" + new TreeSet<>(assigned) + (closed ? "(closed)" : "") + (error != null ? "(error: " + error + ")" : "");
        }
    }

    /** commitSync on each member's own thread; null when every commit succeeded. */
    static String commitAll(List<Member> ms) {
        for (Member m : ms) m.commitRequested = true;
        String err = waitFor(15000, () -> {
            for (Member m : ms) if (m.commitRequested) return "member " + m.name + " did not commit within 15s";
            return null;
        });
        if (err != null) return err;
        List<String> errs = new ArrayList<>();
        for (Member m : ms) if (m.commitError != null) errs.add(m.name + ": commitSync: " + m.commitError);
        return errs.isEmpty() ? null : String.join("; ", errs);
    }

    /**
     * What the members read since the generations in gens: every offset in [from, to) of every
     * partition exactly once, each from the member that owns it; null if so.
     */
    String readSince(List<Member> ms, Map<String, Integer> gens, long from, long to) {
        Map<TopicPartition, List<Long>> consumed = new HashMap<>();
        List<String> problems = new ArrayList<>();
        for (Member m : ms) {
            for (long[] r : m.since(gens.get(m.name))) {
                int p = (int) r[0];
                consumed.computeIfAbsent(tp(p), k -> new ArrayList<>()).add(r[1]);
                if (!m.assigned.contains(p) && problems.size() < 2) {
                    problems.add(m.name + " read partition " + p + " offset " + r[1] + ", not in its assignment " + new TreeSet<>(m.assigned));
                }
            }
            if (m.generation != gens.get(m.name)) problems.add(m.name + " was reassigned meanwhile (another rebalance)");
        }
        String e = exactlyOnce(consumed, from, to);
        if (e != null) problems.add(0, e);
        return problems.isEmpty() ? null : String.join("; ", problems);
    }

    static int readCount(List<Member> ms, Map<String, Integer> gens) {
        int n = 0;
        for (Member m : ms) n += m.since(gens.get(m.name)).size();
        return n;
    }

    static Map<String, Integer> generations(List<Member> ms) {
        Map<String, Integer> g = new HashMap<>();
        for (Member m : ms) g.put(m.name, m.generation);
        return g;
    }

    /** null when the live members hold `size` partitions each, covering the topic exactly once. */
    static String assignmentProblem(List<Member> live, int size) {
        Set<Integer> union = new HashSet<>();
        int total = 0;
        for (Member m : live) {
            if (m.error != null) return "member " + m.name + " failed: " + m.error;
            Set<Integer> a = new HashSet<>(m.assigned);
            if (a.size() != size) return "assignments " + live;
            union.addAll(a);
            total += a.size();
        }
        if (union.size() != PARTITIONS || total != PARTITIONS) return "assignments " + live;
        return null;
    }

    // ------------------------------------------------------------------ phases

    boolean produce() throws Exception {
        String run = "compat-java-groups-" + (System.currentTimeMillis() / 1000) + "-" + new Random().nextInt(100000);
        st.setProperty("topic", run);
        st.setProperty("group", run + "-g");
        saveState();
        out.println("# topic " + run + ", group " + group());
        try (Admin admin = admin()) {
            try {
                get(admin.createTopics(List.of(new NewTopic(topic(), PARTITIONS, REPLICATION_FACTOR))).all());
                st.setProperty("created." + topic(), "true");
                saveState();
                String err = waitFor(20000, () -> {
                    try {
                        return checkTopic(admin, topic(), PARTITIONS);
                    } catch (Exception e) {
                        return why(e);
                    }
                });
                if (err != null) {
                    fail("group_create_topic", "created, but describeTopics 20s later: " + err);
                    return false;
                }
                pass("group_create_topic");
            } catch (Exception e) {
                fail("group_create_topic", "CreateTopics " + topic() + " (6 partitions): " + why(e));
                return false;
            }
        }
        try {
            produceRecords(FIRST, "first");
            pass("group_produce");
        } catch (Exception e) {
            fail("group_produce", why(e));
            return false;
        }
        st.setProperty("produced", String.valueOf(FIRST));
        saveState();
        return true;
    }

    boolean verify() throws Exception {
        if (!loadState() || !created(topic()) || st.getProperty("produced") == null) {
            fail("group_join", "not run: the produce phase did not complete");
            return false;
        }
        List<Member> members = new ArrayList<>();
        for (String n : new String[] {"a", "b", "c"}) members.add(new Member(n));
        try (Admin admin = admin()) {
            for (Member m : members) m.thread.start();

            // -- group_join: three members, 2 partitions each (nothing committed yet: whatever
            // they read before the final assignment is read again from the start)
            String err = waitFor(45000, () -> assignmentProblem(members, 2));
            if (err != null) {
                fail("group_join", "three members did not settle on 2 partitions each within 45s: " + err);
                return false;
            }
            pass("group_join", members.toString());

            // -- group_consume: every record once, each partition by the member that owns it
            Map<String, Integer> gens = generations(members);
            err = waitFor(30000, () -> readCount(members, gens) >= PARTITIONS * FIRST ? null
                : readCount(members, gens) + " of " + PARTITIONS * FIRST + " records read within 30s");
            sleep(300);   // duplicates would show up now
            if (err == null) err = readSince(members, gens, 0, FIRST);
            if (err != null) {
                fail("group_consume", err + "; members " + members);
                return false;
            }
            pass("group_consume");

            // -- group_commit: each member commitSyncs its position; OffsetFetch shows it
            err = commitAll(members);
            if (err == null) err = waitFor(10000, () -> committedProblem(admin, FIRST));
            if (err != null) {
                fail("group_commit", err + "; members " + members);
                return false;
            }
            pass("group_commit");

            // -- group_leave_rebalance: c closes (LeaveGroup); a and b take 3 partitions each.
            // a and b commit in onPartitionsRevoked, as eager-rebalance consumers do.
            Member c = members.get(2);
            List<Member> rest = members.subList(0, 2);
            Set<Integer> cHad = new TreeSet<>(c.assigned);
            Map<String, Integer> before = generations(rest);
            for (Member m : rest) m.commitOnRevoke = true;
            c.stopAndJoin();
            err = waitFor(30000, () -> {
                String e = assignmentProblem(rest, 3);
                if (e != null) return e;
                for (Member m : rest) if (m.generation == before.get(m.name)) return "no new assignment for " + m.name;
                return null;
            });
            for (Member m : rest) m.commitOnRevoke = false;
            if (err != null) {
                fail("group_leave_rebalance", "after c left (it had " + cHad + "), a and b did not settle on 3 partitions each within 30s: "
                    + err + (c.error != null ? "; c: " + c.error : ""));
                return false;
            }
            pass("group_leave_rebalance", "c had " + cHad + "; now " + rest);

            // -- group_commit_on_revoke: those commits (OffsetCommit while PreparingRebalance,
            // from members of the current generation) are accepted
            List<String> revokeErrs = new ArrayList<>();
            int attempts = 0;
            for (Member m : rest) {
                synchronized (m.revokeCommits) {
                    attempts += m.revokeCommits.size();
                    for (String r : m.revokeCommits) if (!r.equals("ok")) revokeErrs.add(m.name + ": " + r);
                }
            }
            if (attempts == 0) fail("group_commit_on_revoke", "neither a nor b had onPartitionsRevoked called in the rebalance");
            else if (revokeErrs.isEmpty()) pass("group_commit_on_revoke");
            else fail("group_commit_on_revoke", "commitSync in onPartitionsRevoked during the rebalance after c left: "
                + String.join("; ", revokeErrs));

            // -- group_resume_after_rebalance: from the committed offsets, only the new records
            Map<String, Integer> gens2 = generations(rest);
            try {
                produceRecords(SECOND, "second");
            } catch (Exception e) {
                fail("group_resume_after_rebalance", "producing " + SECOND + " more records per partition: " + why(e));
                return false;
            }
            err = waitFor(30000, () -> readCount(rest, gens2) >= PARTITIONS * SECOND ? null
                : readCount(rest, gens2) + " of " + PARTITIONS * SECOND + " records read within 30s");
            sleep(300);
            if (err == null) err = readSince(rest, gens2, FIRST, FIRST + SECOND);
            if (err != null) {
                fail("group_resume_after_rebalance", err + "; c had " + cHad + "; now " + rest);
                return false;
            }
            pass("group_resume_after_rebalance");

            // -- group_list: ListGroups shows it Stable; the states filter works
            err = listProblem(admin, GroupState.STABLE);
            if (err == null) pass("group_list");
            else fail("group_list", err);

            // -- group_describe: DescribeGroups after the rebalance
            Set<String> ids = Set.of(members.get(0).clientId(), members.get(1).clientId());
            err = describeProblem(admin, 2, 3, ids);
            if (err == null) pass("group_describe");
            else fail("group_describe", err);

            // -- group_delete_nonempty: DeleteGroups must refuse while it has members
            try {
                get(admin.deleteConsumerGroups(List.of(group())).all());
                fail("group_delete_nonempty", "DeleteGroups deleted a group with 2 members (expected NON_EMPTY_GROUP)");
            } catch (Exception e) {
                Throwable t = e.getCause() != null ? e.getCause() : e;
                if (t instanceof GroupNotEmptyException) pass("group_delete_nonempty", why(e));
                else fail("group_delete_nonempty", "expected GroupNotEmptyException (NON_EMPTY_GROUP), got " + why(e));
            }

            // -- group_commit_before_restart: committed at the end of what was read
            err = commitAll(rest);
            if (err == null) err = waitFor(10000, () -> committedProblem(admin, FIRST + SECOND));
            if (err != null) {
                fail("group_commit_before_restart", err);
                return false;
            }
            pass("group_commit_before_restart");

            // -- group_produce_more: records past the committed offsets, read after the restart
            // (the members stop first, so they cannot read them)
            for (Member m : rest) m.stopAndJoin();
            try {
                produceRecords(TAIL, "tail");
                pass("group_produce_more");
            } catch (Exception e) {
                fail("group_produce_more", why(e));
                return false;
            }
            st.setProperty("committed", String.valueOf(FIRST + SECOND));
            st.setProperty("end", String.valueOf(FIRST + SECOND + TAIL));
            saveState();

            // -- group_close: every member left; the group is Empty, offsets unchanged
            List<String> errs = new ArrayList<>();
            for (Member m : members) if (m.error != null) errs.add("member " + m.name + ": " + m.error);
            err = waitFor(10000, () -> {
                try {
                    String s = listedState(admin);
                    return GroupState.EMPTY.toString().equals(s) ? null : "listGroups: " + group() + " is " + s + ", expected Empty";
                } catch (Exception e) {
                    return "listGroups: " + why(e);
                }
            });
            if (err != null) errs.add(err);
            String off = committedProblem(admin, FIRST + SECOND);
            if (off != null) errs.add("after close: " + off);
            if (errs.isEmpty()) pass("group_close");
            else fail("group_close", String.join("; ", errs));
            return true;
        } finally {
            for (Member m : members) {
                m.stop = true;
                if (m.consumer != null && !m.closed) m.consumer.wakeup();
            }
            for (Member m : members) m.join(15000);
        }
    }

    void restartVerify() throws Exception {
        if (!loadState() || st.getProperty("end") == null) {
            fail("group_committed_after_restart", "not run: the verify phase did not complete");
            return;
        }
        long committed = Long.parseLong(st.getProperty("committed"));
        long end = Long.parseLong(st.getProperty("end"));
        try (Admin admin = admin()) {
            // -- group_committed_after_restart (waits for the broker to be back)
            String err = waitFor(30000, () -> committedProblem(admin, committed));
            if (err != null) {
                fail("group_committed_after_restart", err);
                return;
            }
            pass("group_committed_after_restart");

            // -- group_resume_after_restart: a new member reads exactly the newer records
            Map<TopicPartition, List<Long>> consumed = new HashMap<>();
            Properties p = consumerProps("group-d", group());
            KafkaConsumer<byte[], byte[]> d = new KafkaConsumer<>(p);
            try {
                d.subscribe(List.of(topic()));
                long want = PARTITIONS * (end - committed);
                long deadline = System.currentTimeMillis() + 40000;
                while (total(consumed) < want && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : d.poll(Duration.ofMillis(300))) {
                        consumed.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r.offset());
                    }
                }
                for (ConsumerRecord<byte[], byte[]> r : d.poll(Duration.ofMillis(500))) {
                    consumed.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r.offset());
                }
                err = exactlyOnce(consumed, committed, end);
                if (err != null) {
                    fail("group_resume_after_restart", "a new member should read offsets " + committed + ".." + (end - 1)
                        + " of every partition: " + err);
                    return;
                }
                pass("group_resume_after_restart");

                // -- group_list, group_describe with the one member
                err = listProblem(admin, GroupState.STABLE);
                if (err == null) pass("group_list");
                else fail("group_list", err);
                err = describeProblem(admin, 1, PARTITIONS, Set.of("compat-java-group-d"));
                if (err == null) pass("group_describe");
                else fail("group_describe", err);

                // -- group_commit: commitSync, committed() returns the end offsets
                try {
                    d.commitSync(Duration.ofSeconds(15));
                    Set<TopicPartition> all = new HashSet<>();
                    for (int i = 0; i < PARTITIONS; i++) all.add(tp(i));
                    Map<TopicPartition, OffsetAndMetadata> c = d.committed(all, OP);
                    String oerr = offsetsProblem(c, end, PARTITIONS);
                    if (oerr == null) pass("group_commit");
                    else fail("group_commit", "committed(): " + oerr);
                } catch (Exception e) {
                    fail("group_commit", "commitSync: " + why(e));
                }
            } finally {
                d.close(Duration.ofSeconds(10));
            }

            // -- group_close: Empty again
            err = waitFor(10000, () -> {
                try {
                    String s = listedState(admin);
                    return GroupState.EMPTY.toString().equals(s) ? null : "listGroups: " + group() + " is " + s + ", expected Empty";
                } catch (Exception e) {
                    return "listGroups: " + why(e);
                }
            });
            if (err == null) pass("group_close");
            else fail("group_close", err);
            st.setProperty("final", String.valueOf(end));
            saveState();
        }
    }

    void cleanup() throws Exception {
        if (!loadState() || topic() == null || !created(topic())) {
            fail("group_delete_topic", "topic was not created in the produce phase");
            return;
        }
        try (Admin admin = admin()) {
            // -- group_list_offsets: all partitions, then two named ones
            if (st.getProperty("final") != null) {
                long want = Long.parseLong(st.getProperty("final"));
                try {
                    List<String> errs = new ArrayList<>();
                    String e1 = committedProblem(admin, want);
                    if (e1 != null) errs.add("all partitions: " + e1);
                    Map<TopicPartition, OffsetAndMetadata> some = get(admin.listConsumerGroupOffsets(
                        Map.of(group(), new ListConsumerGroupOffsetsSpec().topicPartitions(List.of(tp(1), tp(4)))))
                        .partitionsToOffsetAndMetadata(group()));
                    if (some.size() != 2 || some.get(tp(1)) == null || some.get(tp(1)).offset() != want
                            || some.get(tp(4)) == null || some.get(tp(4)).offset() != want) {
                        errs.add("partitions 1 and 4: " + some + ", expected " + want + " each");
                    }
                    if (errs.isEmpty()) pass("group_list_offsets");
                    else fail("group_list_offsets", String.join("; ", errs));
                } catch (Exception e) {
                    fail("group_list_offsets", why(e));
                }
            } else {
                fail("group_list_offsets", "not run: the restart-verify phase did not complete");
            }

            // -- group_delete: DeleteGroups on the empty group; gone from ListGroups, offsets gone
            try {
                get(admin.deleteConsumerGroups(List.of(group())).all());
                List<String> errs = new ArrayList<>();
                String state = listedState(admin);
                if (state != null) errs.add("listGroups still lists it (" + state + ")");
                Map<TopicPartition, OffsetAndMetadata> left = get(admin.listConsumerGroupOffsets(group()).partitionsToOffsetAndMetadata());
                if (!left.isEmpty()) errs.add("listConsumerGroupOffsets still returns " + left);
                if (errs.isEmpty()) pass("group_delete");
                else fail("group_delete", "deleted, but " + String.join("; ", errs));
            } catch (Exception e) {
                fail("group_delete", "deleteConsumerGroups: " + why(e));
            }

            // -- group_delete_topic
            try {
                get(admin.deleteTopics(List.of(topic())).all());
                String err = waitFor(20000, () -> {
                    try {
                        return get(admin.listTopics().names()).contains(topic()) ? "still listed" : null;
                    } catch (Exception e) {
                        return why(e);
                    }
                });
                if (err == null) pass("group_delete_topic");
                else fail("group_delete_topic", "deleted, but 20s later listTopics: " + err);
            } catch (Exception e) {
                fail("group_delete_topic", "deleteTopics: " + why(e));
            }
        }
    }
}
