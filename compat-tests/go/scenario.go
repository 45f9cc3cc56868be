package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	partitions      = 3
	maxMessageBytes = 10000
	recordsPerCodec = 120
	keysPerCodec    = 12
	tsPerPartition  = 5
	tsStepMs        = 1000
	// a record whose batch stays just under the topic's max.message.bytes
	largeValueBytes = 9800
	tooLargeBytes   = 2 * maxMessageBytes

	groupPartitions = 6
	groupPerPart    = 10
	commitAt        = 5
	groupMembers    = 3

	idemPerPartition = 40

	adminPartitions    = 2
	adminAddPartitions = 4
)

var allCodecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// replicationFactor of the topics the scenario creates: COMPAT_REPLICATION_FACTOR (main), 1
// when unset; run.sh --cluster sets 3.
var replicationFactor int16 = 1

// ExpRec is an acknowledged record: what the verify phase expects at (Partition, Offset).
type ExpRec struct {
	Codec     string   `json:"codec"` // timestamps | large | none gzip snappy lz4 zstd | idempotent
	Group     string   `json:"group"` // the produce call it came from
	Seq       int      `json:"seq"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Timestamp int64    `json:"timestamp"` // explicit or as acknowledged; 0 = unknown
	Key       []byte   `json:"key"`
	Value     []byte   `json:"value"`
	Headers   []Header `json:"headers"`
}

// State is what the produce phase leaves for verify and cleanup.
type State struct {
	Client  string `json:"client"`
	Topic   string `json:"topic"`
	Created bool   `json:"created"`

	GroupTopic   string `json:"group_topic,omitempty"`
	IdemTopic    string `json:"idem_topic,omitempty"`
	AdminTopic   string `json:"admin_topic,omitempty"`
	GroupCreated bool   `json:"group_created"`
	IdemCreated  bool   `json:"idem_created"`
	AdminCreated bool   `json:"admin_created"`

	TsBase      int64               `json:"ts_base"`
	Windows     map[string][2]int64 `json:"windows"` // produce call -> [start, end] ms
	Records     []ExpRec            `json:"records"`
	IdemRecords []ExpRec            `json:"idem_records"`
	IdemSkipped string              `json:"idem_skipped,omitempty"`

	ResumeGroup string `json:"resume_group,omitempty"`
	Committed   bool   `json:"committed"`

	AdminPartitions int32             `json:"admin_partitions"`
	AdminConfigs    map[string]string `json:"admin_configs"`
}

// Scenario holds one run of one phase.
type Scenario struct {
	cl        Client
	rep       *Report
	bootstrap string
	st        *State
}

func nowMs() int64 { return time.Now().UnixMilli() }

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// ------------------------------------------------------------------------------- topics

// waitTopic waits until Metadata shows the topic with n partitions, each led by a listed
// broker. Returns "" or what was last wrong.
func (s *Scenario) waitTopic(ctx context.Context, topic string, n int32, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	last := "no metadata"
	for {
		c, cancel := withTimeout(ctx, 10*time.Second)
		md, err := s.cl.Metadata(c, []string{topic})
		cancel()
		switch {
		case err != nil:
			last = "Metadata: " + err.Error()
		default:
			last = topicProblem(md, topic, n)
			if last == "" {
				return ""
			}
		}
		if time.Now().After(deadline) {
			return last
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func topicProblem(md *Meta, topic string, n int32) string {
	tm, ok := md.Topics[topic]
	if !ok {
		return "topic not in metadata"
	}
	if tm.Err != "" {
		return "topic error " + tm.Err
	}
	if int32(len(tm.Partitions)) != n {
		return fmt.Sprintf("%d partitions, expected %d", len(tm.Partitions), n)
	}
	for p := int32(0); p < n; p++ {
		pm, ok := tm.Partitions[p]
		if !ok {
			return fmt.Sprintf("partition %d missing", p)
		}
		if pm.Err != "" {
			return fmt.Sprintf("partition %d: error %s", p, pm.Err)
		}
		if _, ok := md.Brokers[pm.Leader]; !ok {
			return fmt.Sprintf("partition %d: leader %d not among brokers %v", p, pm.Leader, brokerIDs(md))
		}
	}
	return ""
}

func brokerIDs(md *Meta) []int32 {
	ids := make([]int32, 0, len(md.Brokers))
	for id := range md.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (s *Scenario) createTopic(ctx context.Context, topic string, n int32, configs map[string]string) string {
	c, cancel := withTimeout(ctx, 30*time.Second)
	err := s.cl.CreateTopic(c, topic, n, configs)
	cancel()
	if err != nil {
		return "CreateTopics: " + err.Error()
	}
	if why := s.waitTopic(ctx, topic, n, 20*time.Second); why != "" {
		return "created, but not ready in Metadata within 20s: " + why
	}
	return ""
}

// ------------------------------------------------------------------------------- produce

func makeRecords(codec string, rng *rand.Rand) []Rec {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
	out := make([]Rec, 0, recordsPerCodec)
	for i := 0; i < recordsPerCodec; i++ {
		key := []byte(fmt.Sprintf("key-%s-%02d", codec, i%keysPerCodec))
		var text strings.Builder
		for w := 0; w < 5+rng.Intn(36); w++ {
			if w > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[rng.Intn(len(words))])
		}
		bin := make([]byte, 16)
		rng.Read(bin)
		value := append([]byte(fmt.Sprintf("%s|%d|%s|", codec, i, text.String())), bin...)
		headers := []Header{{"codec", []byte(codec)}, {"seq", []byte(strconv.Itoa(i))}}
		if i%10 == 3 {
			headers = append(headers, Header{"empty", []byte{}})
		}
		if i%25 == 11 { // tombstone: a null value must come back null
			key = []byte(fmt.Sprintf("tombstone-%s-%d", codec, i))
			value = nil
		}
		if i%25 == 12 { // an empty value must come back empty, not null
			key = []byte(fmt.Sprintf("empty-%s-%d", codec, i))
			value = []byte{}
		}
		if i%30 == 29 {
			headers = nil
		}
		out = append(out, Rec{Key: key, Value: value, Headers: headers, Partition: -1})
	}
	return out
}

// produceCall produces recs with one producer and turns the acknowledgements into
// expected records. Problems: failed records, wrong partitions or timestamps, and
// offsets that do not follow produce order within a partition.
func (s *Scenario) produceCall(ctx context.Context, topic, codec, group string, recs []Rec, opts ProduceOpts) ([]ExpRec, []string, error) {
	start := nowMs()
	c, cancel := withTimeout(ctx, 60*time.Second)
	acks, err := s.cl.Produce(c, topic, recs, opts)
	cancel()
	end := nowMs()
	if s.st.Windows == nil {
		s.st.Windows = map[string][2]int64{}
	}
	s.st.Windows[group] = [2]int64{start, end}
	if err != nil && acks == nil {
		return nil, nil, err
	}
	var problems []string
	if err != nil {
		problems = append(problems, "produce: "+err.Error())
	}
	var out []ExpRec
	last := map[int32]int64{}
	for i, r := range recs {
		if i >= len(acks) {
			problems = append(problems, fmt.Sprintf("record %d: no acknowledgement", i))
			continue
		}
		a := acks[i]
		if a.Err != nil || a.Offset < 0 {
			problems = append(problems, fmt.Sprintf("record %d: %s", i, errText(a.Err)))
			continue
		}
		if r.Partition >= 0 && a.Partition != r.Partition {
			problems = append(problems, fmt.Sprintf("record %d: acknowledged on partition %d, sent to %d", i, a.Partition, r.Partition))
		}
		ts := r.Timestamp
		if ts == 0 && a.Timestamp > 0 {
			ts = a.Timestamp
		}
		if r.Timestamp != 0 && a.Timestamp > 0 && a.Timestamp != r.Timestamp {
			problems = append(problems, fmt.Sprintf("record %d: acknowledged timestamp %d, sent %d", i, a.Timestamp, r.Timestamp))
		}
		if prev, ok := last[a.Partition]; ok && a.Offset <= prev {
			problems = append(problems, fmt.Sprintf("partition %d: record %d got offset %d after offset %d", a.Partition, i, a.Offset, prev))
		}
		last[a.Partition] = a.Offset
		out = append(out, ExpRec{Codec: codec, Group: group, Seq: i, Partition: a.Partition, Offset: a.Offset,
			Timestamp: ts, Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	return out, problems, nil
}

func (s *Scenario) produce(ctx context.Context) {
	st := s.st
	rep := s.rep
	st.GroupTopic = st.Topic + "-group"
	st.IdemTopic = st.Topic + "-idem"
	st.AdminTopic = st.Topic + "-admin"
	st.ResumeGroup = st.Topic + "-resume"

	// -- topics
	if why := s.createTopic(ctx, st.Topic, partitions, map[string]string{"max.message.bytes": strconv.Itoa(maxMessageBytes)}); why != "" {
		rep.Fail("create_topic", "%s", why)
	} else {
		st.Created = true
		rep.Pass("create_topic")
	}
	groupWhy := s.createTopic(ctx, st.GroupTopic, groupPartitions, nil)
	st.GroupCreated = groupWhy == ""
	idemWhy := s.createTopic(ctx, st.IdemTopic, partitions, nil)
	st.IdemCreated = idemWhy == ""

	if st.Created {
		s.produceMain(ctx)
	} else {
		for _, name := range []string{"produce_timestamps", "produce_none", "produce_gzip", "produce_snappy",
			"produce_lz4", "produce_zstd", "large_record", "message_too_large"} {
			rep.Fail(name, "topic was not created (see create_topic)")
		}
	}

	// -- idempotent producer
	s.produceIdempotent(ctx, idemWhy)

	// -- consumer groups
	s.groups(ctx, groupWhy)

	// -- topic admin
	s.admin(ctx)
}

func (s *Scenario) produceMain(ctx context.Context) {
	st, rep, topic := s.st, s.rep, s.st.Topic
	// explicit timestamps first, so they are the first records of every partition: an
	// uncompressed produce call, then a zstd one whose batches hold records with different
	// timestamps (a lookup must find the record inside the compressed batch)
	base := (nowMs() - 600_000) / 1000 * 1000
	st.TsBase = base
	var problems []string
	for g, codec := range []string{"none", "zstd"} {
		var recs []Rec
		for p := int32(0); p < partitions; p++ {
			for k := 0; k < tsPerPartition; k++ {
				n := g*tsPerPartition + k
				recs = append(recs, Rec{
					Key:       []byte(fmt.Sprintf("ts-%d-%d", p, n)),
					Value:     []byte(fmt.Sprintf("timestamped %d/%d", p, n)),
					Headers:   []Header{{"kind", []byte("timestamp")}},
					Partition: p,
					Timestamp: base + int64(n)*tsStepMs,
				})
			}
		}
		if !slices.Contains(s.cl.Codecs(), codec) {
			codec = "none"
		}
		acked, probs, err := s.produceCall(ctx, topic, "timestamps", "timestamps-"+codec+strconv.Itoa(g), recs,
			ProduceOpts{Codec: codec, MaxBatchBytes: 8000, Linger: true})
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s produce: %v", codec, err))
		}
		problems = append(problems, probs...)
		st.Records = append(st.Records, acked...)
	}
	rep.Check("produce_timestamps", problems)

	// keyed records with headers, one producer per codec
	rng := rand.New(rand.NewSource(int64(len(topic)) + st.TsBase))
	for _, codec := range allCodecs {
		name := "produce_" + codec
		if !slices.Contains(s.cl.Codecs(), codec) {
			rep.Skip(name, "%s cannot produce with %s", s.cl.Name(), codec)
			continue
		}
		recs := makeRecords(codec, rng)
		acked, probs, err := s.produceCall(ctx, topic, codec, codec, recs,
			ProduceOpts{Codec: codec, MaxBatchBytes: 8000, Linger: true})
		if err != nil {
			probs = append([]string{"produce: " + err.Error()}, probs...)
		}
		st.Records = append(st.Records, acked...)
		rep.Check(name, probs)
	}

	// a record whose batch is just under max.message.bytes: accepted
	big := make([]byte, largeValueBytes)
	rng.Read(big)
	acked, probs, err := s.produceCall(ctx, topic, "large", "large",
		[]Rec{{Key: []byte("large"), Value: big, Headers: []Header{{"size", []byte(strconv.Itoa(len(big)))}}, Partition: 1}},
		ProduceOpts{Codec: "none"})
	if err != nil {
		probs = append([]string{"produce: " + err.Error()}, probs...)
	}
	st.Records = append(st.Records, acked...)
	if len(probs) > 0 {
		rep.Fail("large_record", "a %d-byte record (topic max.message.bytes=%d) was not accepted: %s",
			len(big), maxMessageBytes, strings.Join(first(probs, 2), "; "))
	} else {
		rep.Pass("large_record")
	}

	// a record over the topic's max.message.bytes: the broker refuses it
	tooBig := make([]byte, tooLargeBytes)
	rng.Read(tooBig)
	c, cancel := withTimeout(ctx, 30*time.Second)
	acks, err := s.cl.Produce(c, topic, []Rec{{Key: []byte("too-large"), Value: tooBig, Partition: 0}}, ProduceOpts{Codec: "none"})
	cancel()
	switch {
	case err == nil && len(acks) == 1 && acks[0].Err == nil:
		rep.Fail("message_too_large", "a %d-byte record was accepted at partition %d offset %d (topic max.message.bytes=%d)",
			len(tooBig), acks[0].Partition, acks[0].Offset, maxMessageBytes)
	default:
		e := err
		if e == nil && len(acks) == 1 {
			e = acks[0].Err
		}
		if isMessageTooLarge(e) {
			rep.Pass("message_too_large")
			rep.Note("message_too_large: client said: %s", errText(e))
		} else {
			rep.Fail("message_too_large", "expected MESSAGE_TOO_LARGE (10) from the broker, client said: %s", errText(e))
		}
	}
}

func (s *Scenario) produceIdempotent(ctx context.Context, createWhy string) {
	st, rep := s.st, s.rep
	if createWhy != "" {
		rep.Fail("idempotent_producer", "topic %s: %s", st.IdemTopic, createWhy)
		return
	}
	var problems []string
	for call := 0; call < 2; call++ {
		var recs []Rec
		for i := 0; i < idemPerPartition/2; i++ {
			for p := int32(0); p < partitions; p++ {
				seq := call*idemPerPartition/2 + i
				recs = append(recs, Rec{
					Key:       []byte(fmt.Sprintf("idem-%d-%d", p, seq)),
					Value:     []byte(fmt.Sprintf("idempotent %d/%d", p, seq)),
					Headers:   []Header{{"seq", []byte(strconv.Itoa(seq))}},
					Partition: p,
				})
			}
		}
		acked, probs, err := s.produceCall(ctx, st.IdemTopic, "idempotent", fmt.Sprintf("idempotent-%d", call), recs,
			ProduceOpts{Codec: "none", Idempotent: true, Linger: true, MaxBatchBytes: 1000})
		if errors.Is(err, ErrUnsupported) {
			st.IdemSkipped = fmt.Sprintf("%s has no idempotent producer", s.cl.Name())
			rep.Skip("idempotent_producer", "%s", st.IdemSkipped)
			return
		}
		if err != nil {
			problems = append(problems, "produce: "+err.Error())
		}
		problems = append(problems, probs...)
		st.IdemRecords = append(st.IdemRecords, acked...)
	}
	// one producer session per call: offsets 0..n-1 per partition, in produce order
	for p := int32(0); p < partitions; p++ {
		want := int64(0)
		for _, r := range st.IdemRecords {
			if r.Partition != p {
				continue
			}
			if r.Offset != want {
				problems = append(problems, fmt.Sprintf("partition %d: record %s acknowledged at offset %d, expected %d", p, r.Key, r.Offset, want))
				break
			}
			want++
		}
	}
	rep.Check("idempotent_producer", problems)
}

// ------------------------------------------------------------------------------- groups

func assignmentText(ms []GroupMember) string {
	var parts []string
	for i, m := range ms {
		a := m.Assigned()
		parts = append(parts, fmt.Sprintf("m%d%v", i+1, a))
	}
	return strings.Join(parts, " ")
}

// balanced: every member has partitions, no partition twice, all n covered.
func balanced(ms []GroupMember, n int) bool {
	seen := map[int32]bool{}
	for _, m := range ms {
		a := m.Assigned()
		if len(a) == 0 {
			return false
		}
		for _, p := range a {
			if seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	return len(seen) == n
}

func waitBalanced(ms []GroupMember, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if balanced(ms, n) {
			// stable for a moment (no rebalance right behind it)
			time.Sleep(300 * time.Millisecond)
			if balanced(ms, n) {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func memberErrors(ms []GroupMember) string {
	var errs []string
	for i, m := range ms {
		if e := m.Err(); e != "" {
			errs = append(errs, fmt.Sprintf("m%d: %s", i+1, e))
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return "; client errors: " + strings.Join(errs, "; ")
}

func (s *Scenario) groups(ctx context.Context, createWhy string) {
	st, rep := s.st, s.rep
	names := []string{"group_join", "group_leave_rebalance", "group_commit_on_revoke", "group_commit"}
	if createWhy != "" {
		for _, n := range names {
			rep.Fail(n, "topic %s: %s", st.GroupTopic, createWhy)
		}
		return
	}
	var recs []Rec
	for i := 0; i < groupPerPart; i++ {
		for p := int32(0); p < groupPartitions; p++ {
			recs = append(recs, Rec{Key: []byte(fmt.Sprintf("g-%d-%d", p, i)), Value: []byte(fmt.Sprintf("group record %d/%d", p, i)), Partition: p})
		}
	}
	_, probs, err := s.produceCall(ctx, st.GroupTopic, "group", "group", recs, ProduceOpts{Codec: "none", Linger: true})
	if err != nil || len(probs) > 0 {
		why := strings.Join(first(append(probs, errText(err)), 2), "; ")
		for _, n := range names {
			rep.Fail(n, "producing to %s failed: %s", st.GroupTopic, why)
		}
		return
	}

	// three members share six partitions; then one leaves and the other two take over
	group := st.Topic + "-members"
	var members, all []GroupMember
	notRun := func() {
		rep.Fail("group_leave_rebalance", "not run: the group did not form")
		rep.Fail("group_commit_on_revoke", "not run: the group did not form")
	}
	defer func() {
		for _, m := range members {
			c, cancel := withTimeout(ctx, 15*time.Second)
			_ = m.Leave(c)
			cancel()
		}
	}()
	t0 := time.Now()
	for i := 0; i < groupMembers; i++ {
		c, cancel := withTimeout(ctx, 15*time.Second)
		m, err := s.cl.JoinGroup(c, group, st.GroupTopic, fmt.Sprintf("m%d", i+1), groupPerPart)
		cancel()
		if err != nil {
			rep.Fail("group_join", "member %d: %v", i+1, err)
			notRun()
			s.groupCommit(ctx)
			return
		}
		members = append(members, m)
	}
	all = append(all, members...)
	if !waitBalanced(members, groupPartitions, 45*time.Second) {
		rep.Fail("group_join", "%d members did not share %d partitions within 45s: %s%s",
			groupMembers, groupPartitions, assignmentText(members), memberErrors(members))
		notRun()
		s.groupCommit(ctx)
		return
	}
	rep.Pass("group_join")
	rep.Note("group_join: %s after %.1fs", assignmentText(members), time.Since(t0).Seconds())

	leaving := members[len(members)-1]
	members = members[:len(members)-1]
	t0 = time.Now()
	c, cancel := withTimeout(ctx, 15*time.Second)
	err = leaving.Leave(c)
	cancel()
	if err != nil {
		rep.Note("group_leave_rebalance: member %d leaving: %v", groupMembers, err)
	}
	if !waitBalanced(members, groupPartitions, 45*time.Second) {
		rep.Fail("group_leave_rebalance", "after member %d left, the other %d did not take over all %d partitions within 45s: %s%s",
			groupMembers, len(members), groupPartitions, assignmentText(members), memberErrors(members))
	} else {
		rep.Pass("group_leave_rebalance")
		rep.Note("group_leave_rebalance: %s after %.1fs", assignmentText(members), time.Since(t0).Seconds())
	}
	for _, m := range members {
		c, cancel := withTimeout(ctx, 15*time.Second)
		_ = m.Leave(c)
		cancel()
	}
	members = nil

	// Every member committed offset 10 for the partitions taken from it, from its revoke
	// hook. Eager members (sarama's and kafka-go's default range assignor) revoke and
	// commit while the group is rebalancing (PreparingRebalance): Kafka accepts commits of
	// the current generation then, and refuses them only in CompletingRebalance.
	var revokeProbs []string
	for _, m := range all {
		revokeProbs = append(revokeProbs, m.CommitErrs()...)
	}
	c, cancel = withTimeout(ctx, 20*time.Second)
	got, err2 := s.cl.CommittedOffsets(c, group, st.GroupTopic, groupPartitions)
	cancel()
	if err2 != nil {
		revokeProbs = append(revokeProbs, "OffsetFetch: "+err2.Error())
	} else {
		for p := int32(0); p < groupPartitions; p++ {
			if o, ok := got[p]; !ok || o != groupPerPart {
				revokeProbs = append(revokeProbs, fmt.Sprintf("partition %d: committed %v, expected %d", p, got[p], groupPerPart))
			}
		}
	}
	rep.Check("group_commit_on_revoke", revokeProbs)
	s.groupCommit(ctx)
}

func (s *Scenario) groupCommit(ctx context.Context) {
	st, rep := s.st, s.rep
	c, cancel := withTimeout(ctx, 60*time.Second)
	err := s.cl.ConsumeAndCommit(c, st.ResumeGroup, st.GroupTopic, groupPartitions, commitAt)
	cancel()
	if err != nil {
		rep.Fail("group_commit", "consume and commit offset %d: %v", commitAt, err)
		return
	}
	c, cancel = withTimeout(ctx, 20*time.Second)
	got, err := s.cl.CommittedOffsets(c, st.ResumeGroup, st.GroupTopic, groupPartitions)
	cancel()
	if err != nil {
		rep.Fail("group_commit", "committed, but OffsetFetch failed: %v", err)
		return
	}
	if probs := committedProblems(got); len(probs) > 0 {
		rep.Fail("group_commit", "OffsetFetch after commit: %s", strings.Join(probs, "; "))
		return
	}
	st.Committed = true
	rep.Pass("group_commit")
}

func committedProblems(got map[int32]int64) []string {
	var probs []string
	for p := int32(0); p < groupPartitions; p++ {
		o, ok := got[p]
		if !ok {
			probs = append(probs, fmt.Sprintf("partition %d: no committed offset", p))
		} else if o != commitAt {
			probs = append(probs, fmt.Sprintf("partition %d: committed %d, expected %d", p, o, commitAt))
		}
	}
	return probs
}

// ------------------------------------------------------------------------------- admin

func (s *Scenario) admin(ctx context.Context) {
	st, rep := s.st, s.rep
	names := []string{"admin_describe_topic", "admin_create_partitions", "admin_alter_configs",
		"admin_describe_configs", "admin_alter_configs_legacy"}
	initial := map[string]string{"retention.ms": "3600000", "cleanup.policy": "delete"}
	if why := s.createTopic(ctx, st.AdminTopic, adminPartitions, initial); why != "" {
		for _, n := range names {
			rep.Fail(n, "topic %s with %v: %s", st.AdminTopic, initial, why)
		}
		return
	}
	st.AdminCreated = true
	st.AdminPartitions = adminPartitions
	st.AdminConfigs = map[string]string{"retention.ms": "3600000", "cleanup.policy": "delete"}

	// describe: partitions, leader, replicas, ISR
	c, cancel := withTimeout(ctx, 10*time.Second)
	md, err := s.cl.Metadata(c, []string{st.AdminTopic})
	cancel()
	if err != nil {
		rep.Fail("admin_describe_topic", "Metadata: %v", err)
	} else {
		var probs []string
		if why := topicProblem(md, st.AdminTopic, adminPartitions); why != "" {
			probs = append(probs, why)
		} else {
			// replicationFactor distinct replicas, the leader among them, all in sync
			for p, pm := range md.Topics[st.AdminTopic].Partitions {
				reps := slices.Sorted(slices.Values(pm.Replicas))
				isr := slices.Sorted(slices.Values(pm.ISR))
				if len(reps) != int(replicationFactor) || len(slices.Compact(slices.Clone(reps))) != len(reps) ||
					!slices.Contains(reps, pm.Leader) {
					probs = append(probs, fmt.Sprintf("partition %d: replicas %v (leader %d), expected %d distinct replicas including the leader",
						p, pm.Replicas, pm.Leader, replicationFactor))
				}
				if !slices.Equal(isr, reps) {
					probs = append(probs, fmt.Sprintf("partition %d: isr %v, expected all replicas %v", p, pm.ISR, pm.Replicas))
				}
			}
		}
		rep.Check("admin_describe_topic", probs)
	}

	// add partitions
	c, cancel = withTimeout(ctx, 20*time.Second)
	err = s.cl.CreatePartitions(c, st.AdminTopic, adminAddPartitions)
	cancel()
	if err != nil {
		rep.Fail("admin_create_partitions", "CreatePartitions %d -> %d: %v", adminPartitions, adminAddPartitions, err)
	} else if why := s.waitTopic(ctx, st.AdminTopic, adminAddPartitions, 15*time.Second); why != "" {
		rep.Fail("admin_create_partitions", "CreatePartitions %d -> %d succeeded, but Metadata 15s later: %s", adminPartitions, adminAddPartitions, why)
	} else {
		st.AdminPartitions = adminAddPartitions
		rep.Pass("admin_create_partitions")
	}

	// incremental alter, then describe
	set := map[string]string{"retention.ms": "7200000", "max.message.bytes": "20000"}
	c, cancel = withTimeout(ctx, 20*time.Second)
	err = s.cl.AlterConfigs(c, st.AdminTopic, set)
	cancel()
	if err != nil {
		rep.Fail("admin_alter_configs", "IncrementalAlterConfigs %v: %v", set, err)
	} else {
		for k, v := range set {
			st.AdminConfigs[k] = v
		}
		rep.Pass("admin_alter_configs")
	}
	probs := s.configProblems(ctx, st.AdminTopic, st.AdminConfigs, true)
	rep.Check("admin_describe_configs", probs)

	// the older AlterConfigs: replaces the topic's whole dynamic config
	legacy := map[string]string{"retention.ms": "10800000", "max.message.bytes": "20000", "cleanup.policy": "delete"}
	c, cancel = withTimeout(ctx, 20*time.Second)
	err = s.cl.AlterConfigsLegacy(c, st.AdminTopic, legacy)
	cancel()
	switch {
	case errors.Is(err, ErrUnsupported):
		rep.Skip("admin_alter_configs_legacy", "%s has no AlterConfigs (non-incremental) call", s.cl.Name())
	case err != nil:
		rep.Fail("admin_alter_configs_legacy", "AlterConfigs %v: %v", legacy, err)
	default:
		want := map[string]string{}
		for k, v := range legacy {
			want[k] = v
		}
		if probs := s.configProblems(ctx, st.AdminTopic, want, false); len(probs) > 0 {
			rep.Fail("admin_alter_configs_legacy", "AlterConfigs succeeded, but DescribeConfigs: %s", strings.Join(probs, "; "))
		} else {
			st.AdminConfigs = want
			rep.Pass("admin_alter_configs_legacy")
		}
	}
}

// configProblems describes the topic and compares the given dynamic configs; withDefaults
// also wants a default config (compression.type) in the answer. A config change reaches
// the brokers' metadata asynchronously (KRaft), so it asks again for up to 10 s.
func (s *Scenario) configProblems(ctx context.Context, topic string, want map[string]string, withDefaults bool) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		probs := s.configProblemsOnce(ctx, topic, want, withDefaults)
		if len(probs) == 0 || time.Now().After(deadline) {
			return probs
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *Scenario) configProblemsOnce(ctx context.Context, topic string, want map[string]string, withDefaults bool) []string {
	c, cancel := withTimeout(ctx, 20*time.Second)
	got, err := s.cl.DescribeConfigs(c, topic)
	cancel()
	if err != nil {
		return []string{"DescribeConfigs: " + err.Error()}
	}
	var probs []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e, ok := got[k]
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("%s missing (%d configs returned)", k, len(got)))
		case e.Value != want[k]:
			probs = append(probs, fmt.Sprintf("%s=%s, expected %s", k, e.Value, want[k]))
		case e.IsDefault:
			probs = append(probs, fmt.Sprintf("%s=%s reported as a default (source %s)", k, e.Value, e.Source))
		}
	}
	if withDefaults {
		if e, ok := got["compression.type"]; !ok {
			probs = append(probs, fmt.Sprintf("default config compression.type missing (%d configs returned)", len(got)))
		} else if e.Value != "producer" {
			probs = append(probs, fmt.Sprintf("compression.type=%s, expected the default producer", e.Value))
		}
	}
	return probs
}

// ------------------------------------------------------------------------------- verify

func (s *Scenario) verify(ctx context.Context) {
	st, rep := s.st, s.rep
	if !st.Created {
		rep.Fail("metadata", "topic was not created in the produce phase")
	} else {
		s.verifyMain(ctx)
	}
	s.verifyIdempotent(ctx)
	s.verifyResume(ctx)
	s.verifyAdmin(ctx)
}

func show(b []byte) string {
	if b == nil {
		return "null"
	}
	t := strconv.Quote(string(b))
	if len(t) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", t[:40], len(b))
	}
	return t
}

func headersText(hs []Header) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, h.Key+"="+show(h.Value))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameHeaders(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !sameBytes(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// nullIsEmpty is set for clients that hand back empty bytes as nil (see Client).
var nullIsEmpty bool

// sameBytes distinguishes null (nil) from empty, unless the client cannot.
func sameBytes(a, b []byte) bool {
	if nullIsEmpty {
		return bytes.Equal(a, b)
	}
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func (s *Scenario) verifyMain(ctx context.Context) {
	st, rep, topic := s.st, s.rep, s.st.Topic
	if s.cl.NullIsEmpty() {
		nullIsEmpty = true
		rep.Note("%s returns empty values and header values as null: content checks compare them as equal", s.cl.Name())
	}
	// metadata (waits for the broker to be back after a restart)
	if why := s.waitTopic(ctx, topic, partitions, 30*time.Second); why != "" {
		rep.Fail("metadata", "%s", why)
	} else {
		rep.Pass("metadata")
	}

	expected := st.Records
	byPos := map[[2]int64]ExpRec{}
	expCount := map[int32]int64{}
	for _, r := range expected {
		byPos[[2]int64{int64(r.Partition), r.Offset}] = r
		expCount[r.Partition]++
	}

	// watermarks, then everything from offset 0
	var problems []string
	c, cancel := withTimeout(ctx, 20*time.Second)
	wm, err := s.cl.Watermarks(c, topic, partitions)
	cancel()
	ends := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		ends[p] = expCount[p]
	}
	if err != nil {
		problems = append(problems, "watermarks (ListOffsets): "+err.Error())
	} else {
		for p := int32(0); p < partitions; p++ {
			if w := wm[p]; w != [2]int64{0, expCount[p]} {
				problems = append(problems, fmt.Sprintf("partition %d: watermarks low=%d high=%d, expected low=0 high=%d", p, w[0], w[1], expCount[p]))
			}
		}
	}
	c, cancel = withTimeout(ctx, 60*time.Second)
	msgs, errs := s.cl.ConsumeAll(c, topic, ends)
	cancel()
	for _, e := range first(errs, 3) {
		problems = append(problems, "consumer error: "+e)
	}
	perPart := map[int32][]Consumed{}
	for _, m := range msgs {
		perPart[m.Partition] = append(perPart[m.Partition], m)
	}
	for p := int32(0); p < partitions; p++ {
		if int64(len(perPart[p])) != expCount[p] {
			problems = append(problems, fmt.Sprintf("partition %d: consumed %d records, expected %d", p, len(perPart[p]), expCount[p]))
		}
	}
	rep.Check("consume_all", problems)

	got := map[[2]int64]Consumed{}
	for _, m := range msgs {
		got[[2]int64{int64(m.Partition), m.Offset}] = m
	}
	codecs := append([]string{"timestamps"}, allCodecs...)
	codecs = append(codecs, "large")
	for _, codec := range codecs {
		name := "content_" + codec
		if codec != "timestamps" && codec != "large" && !slices.Contains(s.cl.Codecs(), codec) {
			rep.Skip(name, "%s cannot produce with %s", s.cl.Name(), codec)
			continue
		}
		var problems []string
		n := 0
		for _, r := range expected {
			if r.Codec != codec {
				continue
			}
			n++
			m, ok := got[[2]int64{int64(r.Partition), r.Offset}]
			if !ok {
				problems = append(problems, fmt.Sprintf("record %s#%d at partition %d offset %d not consumed", codec, r.Seq, r.Partition, r.Offset))
				continue
			}
			if !sameBytes(m.Key, r.Key) {
				problems = append(problems, fmt.Sprintf("p%d@%d key %s != %s", r.Partition, r.Offset, show(m.Key), show(r.Key)))
			}
			if !sameBytes(m.Value, r.Value) {
				problems = append(problems, fmt.Sprintf("p%d@%d value %s != %s", r.Partition, r.Offset, show(m.Value), show(r.Value)))
			}
			if !sameHeaders(m.Headers, r.Headers) {
				problems = append(problems, fmt.Sprintf("p%d@%d headers %s != %s", r.Partition, r.Offset, headersText(m.Headers), headersText(r.Headers)))
			}
		}
		if n == 0 {
			problems = append(problems, "no acknowledged records from the produce phase")
		}
		rep.Check(name, problems)
	}

	// per-partition order: offsets 0..n-1, and each offset holds what the producer was told
	problems = nil
	for p := int32(0); p < partitions; p++ {
		for i, m := range perPart[p] {
			if m.Offset != int64(i) {
				problems = append(problems, fmt.Sprintf("partition %d: offsets not 0..%d in order (index %d has offset %d)", p, len(perPart[p])-1, i, m.Offset))
				break
			}
			r, ok := byPos[[2]int64{int64(p), m.Offset}]
			if !ok {
				problems = append(problems, fmt.Sprintf("partition %d: offset %d was never acknowledged to the producer", p, m.Offset))
				break
			}
			if !sameBytes(m.Key, r.Key) {
				problems = append(problems, fmt.Sprintf("partition %d offset %d: key %s, the producer got this offset for %s", p, m.Offset, show(m.Key), show(r.Key)))
				break
			}
		}
		if len(perPart[p]) == 0 && expCount[p] > 0 {
			problems = append(problems, fmt.Sprintf("partition %d: nothing consumed (see consume_all)", p))
		}
	}
	rep.Check("partition_order", problems)

	// timestamps: explicit ones exactly, client-set ones as acknowledged or within the
	// produce call's time window
	problems = nil
	for pos, r := range byPos {
		m, ok := got[pos]
		if !ok {
			continue
		}
		if r.Timestamp != 0 {
			if m.Timestamp != r.Timestamp {
				problems = append(problems, fmt.Sprintf("p%d@%d timestamp %d, producer set/was told %d", pos[0], pos[1], m.Timestamp, r.Timestamp))
			}
			continue
		}
		w := st.Windows[r.Group]
		if m.Timestamp < w[0]-2000 || m.Timestamp > w[1]+2000 {
			problems = append(problems, fmt.Sprintf("p%d@%d timestamp %d outside the produce call's window %d..%d", pos[0], pos[1], m.Timestamp, w[0], w[1]))
		}
	}
	sort.Strings(problems)
	rep.Check("record_timestamps", problems)

	s.verifyOffsetsForTimes(ctx, perPart)
}

type tsQuery struct {
	p      int32
	t      int64
	want   int64
	inside bool
}

func (s *Scenario) verifyOffsetsForTimes(ctx context.Context, perPart map[int32][]Consumed) {
	st, rep := s.st, s.rep
	hasTs := false
	for _, r := range st.Records {
		if r.Codec == "timestamps" {
			hasTs = true
			break
		}
	}
	if !hasTs {
		rep.Fail("offsets_for_times", "no timestamped records were acknowledged")
		rep.Fail("offsets_for_times_compressed", "no timestamped records were acknowledged")
		return
	}
	// The log as consumed is the truth for "first offset whose timestamp >= t"
	// (record_timestamps checks it against what was produced); the produce call of each
	// offset tells whether it sits after the first record of a compressed call.
	groupAt := map[[2]int64]ExpRec{}
	for _, r := range st.Records {
		groupAt[[2]int64{int64(r.Partition), r.Offset}] = r
	}
	base := st.TsBase
	var queries []tsQuery
	for p := int32(0); p < partitions; p++ {
		recs := perPart[p]
		if len(recs) == 0 {
			continue
		}
		n := int64(2 * tsPerPartition)
		times := map[int64]bool{
			base - 1: true, base + tsStepMs/2: true, base + 2*tsStepMs: true,
			base + (tsPerPartition-1)*tsStepMs + 1:          true,
			base + (tsPerPartition+1)*tsStepMs + tsStepMs/2: true,
			base + (n-1)*tsStepMs:                           true,
			base + (n-1)*tsStepMs + 1:                       true,
			nowMs() + 86_400_000:                            true,
			recs[len(recs)-1].Timestamp:                     true,
			recs[len(recs)-1].Timestamp + 1:                 true,
		}
		// where the timestamp changes inside one produce call: up to 2 per call
		perGroup := map[string]int{}
		for i := 1; i < len(recs); i++ {
			prev, r := groupAt[[2]int64{int64(p), recs[i-1].Offset}], groupAt[[2]int64{int64(p), recs[i].Offset}]
			if r.Group != "" && r.Group == prev.Group && recs[i].Timestamp > recs[i-1].Timestamp && perGroup[r.Group] < 2 {
				perGroup[r.Group]++
				times[recs[i].Timestamp] = true
			}
		}
		ts := make([]int64, 0, len(times))
		for t := range times {
			ts = append(ts, t)
		}
		slices.Sort(ts)
		for _, t := range ts {
			want := int64(-1)
			for _, m := range recs {
				if m.Timestamp >= t {
					want = m.Offset
					break
				}
			}
			inside := false
			if want > 0 {
				r, prev := groupAt[[2]int64{int64(p), want}], groupAt[[2]int64{int64(p), want - 1}]
				inside = r.Group != "" && r.Group == prev.Group && !strings.HasPrefix(r.Group, "none") &&
					!strings.HasPrefix(r.Group, "timestamps-none")
			}
			queries = append(queries, tsQuery{p, t, want, inside})
		}
	}
	// rounds of one timestamp per partition
	answers := make([]string, len(queries))
	gotOff := make([]int64, len(queries))
	var rounds []map[int32]int
	for i, q := range queries {
		placed := false
		for _, r := range rounds {
			if _, ok := r[q.p]; !ok {
				r[q.p] = i
				placed = true
				break
			}
		}
		if !placed {
			rounds = append(rounds, map[int32]int{q.p: i})
		}
	}
	for _, r := range rounds {
		req := map[int32]int64{}
		for p, i := range r {
			req[p] = queries[i].t
		}
		c, cancel := withTimeout(ctx, 15*time.Second)
		offs, perr, err := s.cl.OffsetsForTimes(c, st.Topic, req)
		cancel()
		for p, i := range r {
			switch {
			case err != nil:
				answers[i] = "ListOffsets failed: " + err.Error()
			case perr[p] != nil:
				answers[i] = "error " + perr[p].Error()
			default:
				o, ok := offs[p]
				if !ok {
					answers[i] = "no answer for the partition"
				} else {
					gotOff[i] = o
				}
			}
		}
	}
	for _, name := range []string{"offsets_for_times", "offsets_for_times_compressed"} {
		wantInside := name == "offsets_for_times_compressed"
		var problems []string
		n := 0
		for i, q := range queries {
			if q.inside != wantInside {
				continue
			}
			n++
			where := fmt.Sprintf("partition %d timestamp %d", q.p, q.t)
			if answers[i] != "" {
				problems = append(problems, where+": "+answers[i])
			} else if gotOff[i] != q.want {
				problems = append(problems, fmt.Sprintf("%s: offset %d, expected %d", where, gotOff[i], q.want))
			}
		}
		if n == 0 && len(perPart) > 0 {
			problems = append(problems, "no such lookups could be made (nothing consumed?)")
		}
		rep.Check(name, problems)
	}
}

func (s *Scenario) verifyIdempotent(ctx context.Context) {
	st, rep := s.st, s.rep
	if st.IdemSkipped != "" {
		rep.Skip("idempotent_log", "%s", st.IdemSkipped)
		return
	}
	if !st.IdemCreated || len(st.IdemRecords) == 0 {
		rep.Fail("idempotent_log", "nothing was produced idempotently in the produce phase")
		return
	}
	ends := map[int32]int64{}
	for _, r := range st.IdemRecords {
		if r.Offset+1 > ends[r.Partition] {
			ends[r.Partition] = r.Offset + 1
		}
	}
	c, cancel := withTimeout(ctx, 40*time.Second)
	msgs, errs := s.cl.ConsumeAll(c, st.IdemTopic, ends)
	cancel()
	var problems []string
	for _, e := range first(errs, 2) {
		problems = append(problems, "consumer error: "+e)
	}
	got := map[[2]int64]Consumed{}
	perPart := map[int32]int{}
	for _, m := range msgs {
		k := [2]int64{int64(m.Partition), m.Offset}
		if _, dup := got[k]; dup {
			problems = append(problems, fmt.Sprintf("partition %d offset %d read twice", m.Partition, m.Offset))
		}
		got[k] = m
		perPart[m.Partition]++
		if m.ProducerID != -2 && m.ProducerID < 0 {
			problems = append(problems, fmt.Sprintf("partition %d offset %d: batch has no producer id (%d)", m.Partition, m.Offset, m.ProducerID))
		}
	}
	for _, r := range st.IdemRecords {
		m, ok := got[[2]int64{int64(r.Partition), r.Offset}]
		if !ok {
			problems = append(problems, fmt.Sprintf("partition %d offset %d (%s) not consumed", r.Partition, r.Offset, r.Key))
		} else if !sameBytes(m.Key, r.Key) || !sameBytes(m.Value, r.Value) {
			problems = append(problems, fmt.Sprintf("partition %d offset %d: %s, expected %s", r.Partition, r.Offset, show(m.Key), show(r.Key)))
		}
	}
	for p, n := range ends {
		if int64(perPart[p]) != n {
			problems = append(problems, fmt.Sprintf("partition %d: %d records, expected %d (each exactly once)", p, perPart[p], n))
		}
	}
	sort.Strings(problems)
	rep.Check("idempotent_log", problems)
}

func (s *Scenario) verifyResume(ctx context.Context) {
	st, rep := s.st, s.rep
	if !st.Committed {
		rep.Fail("group_committed", "no offsets were committed in the produce phase (see group_commit)")
		rep.Fail("group_resume", "no offsets were committed in the produce phase (see group_commit)")
		return
	}
	c, cancel := withTimeout(ctx, 20*time.Second)
	got, err := s.cl.CommittedOffsets(c, st.ResumeGroup, st.GroupTopic, groupPartitions)
	cancel()
	if err != nil {
		rep.Fail("group_committed", "OffsetFetch: %v", err)
	} else {
		rep.Check("group_committed", committedProblems(got))
	}
	c, cancel = withTimeout(ctx, 60*time.Second)
	read, err := s.cl.Resume(c, st.ResumeGroup, st.GroupTopic, groupPartitions, groupPerPart)
	cancel()
	if err != nil {
		rep.Fail("group_resume", "rejoining the group and consuming: %v", err)
		return
	}
	var probs []string
	for p := int32(0); p < groupPartitions; p++ {
		offs := read[p]
		want := []int64{}
		for o := int64(commitAt); o < groupPerPart; o++ {
			want = append(want, o)
		}
		if !slices.Equal(offs, want) {
			probs = append(probs, fmt.Sprintf("partition %d: read offsets %v, expected %v (resume at the committed %d)", p, offs, want, commitAt))
		}
	}
	rep.Check("group_resume", probs)
}

func (s *Scenario) verifyAdmin(ctx context.Context) {
	st, rep := s.st, s.rep
	if !st.AdminCreated {
		rep.Fail("admin_persisted", "the admin topic was not created in the produce phase")
		return
	}
	var probs []string
	if why := s.waitTopic(ctx, st.AdminTopic, st.AdminPartitions, 15*time.Second); why != "" {
		probs = append(probs, why)
	}
	probs = append(probs, s.configProblems(ctx, st.AdminTopic, st.AdminConfigs, false)...)
	rep.Check("admin_persisted", probs)
}

// ------------------------------------------------------------------------------- cleanup

func (s *Scenario) cleanup(ctx context.Context) {
	st, rep := s.st, s.rep
	var topics []string
	for _, t := range []struct {
		name    string
		created bool
	}{{st.Topic, st.Created}, {st.GroupTopic, st.GroupCreated}, {st.IdemTopic, st.IdemCreated}, {st.AdminTopic, st.AdminCreated}} {
		if t.created {
			topics = append(topics, t.name)
		}
	}
	if len(topics) == 0 {
		rep.Fail("delete_topic", "no topic was created in the produce phase")
		return
	}
	c, cancel := withTimeout(ctx, 30*time.Second)
	err := s.cl.DeleteTopics(c, topics)
	cancel()
	if err != nil {
		rep.Fail("delete_topic", "DeleteTopics %v: %v", topics, err)
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for {
		c, cancel := withTimeout(ctx, 10*time.Second)
		md, err := s.cl.Metadata(c, nil)
		cancel()
		if err != nil {
			last = "Metadata: " + err.Error()
		} else {
			var still []string
			for _, t := range topics {
				if _, ok := md.Topics[t]; ok {
					still = append(still, t)
				}
			}
			if len(still) == 0 {
				rep.Pass("delete_topic")
				return
			}
			last = fmt.Sprintf("still in metadata: %v", still)
		}
		if time.Now().After(deadline) {
			rep.Fail("delete_topic", "deleted, but 20s later %s", last)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}
