package main

import (
	"context"
	"errors"
)

// What the scenario needs from a client library. Each client implements it with its own
// public API (franz.go, sarama.go, kafkago.go); the checks themselves are shared
// (scenario.go), so the three clients are held to exactly the same expectations.

// Header is one record header; a nil Value is a null header value.
type Header struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// Rec is a record to produce. Partition -1 lets the client's partitioner choose;
// Timestamp 0 lets the client set it.
type Rec struct {
	Key, Value []byte
	Headers    []Header
	Partition  int32
	Timestamp  int64
}

// Ack is the client's answer for one produced record. Offset -1 = not acknowledged
// (Err says why); Timestamp 0 = the client does not report it.
type Ack struct {
	Partition int32
	Offset    int64
	Timestamp int64
	Err       error
}

// Consumed is a record read back.
type Consumed struct {
	Partition  int32
	Offset     int64
	Key, Value []byte
	Headers    []Header
	Timestamp  int64
	// ProducerID of the batch, -2 when the client does not expose it.
	ProducerID int64
}

// ProduceOpts tunes one producer instance.
type ProduceOpts struct {
	Codec      string // none gzip snappy lz4 zstd
	Idempotent bool
	// MaxBatchBytes caps batches (the topic's max.message.bytes is 10000); 0 = client default.
	MaxBatchBytes int
	// Linger lets records accumulate into multi-record batches.
	Linger bool
}

// PartitionMeta is one partition in Metadata.
type PartitionMeta struct {
	Leader   int32
	Replicas []int32
	ISR      []int32
	Err      string
}

// TopicMeta is one topic in Metadata; Err is the topic-level error ("" = none).
type TopicMeta struct {
	Err        string
	Partitions map[int32]PartitionMeta
}

// Meta is a Metadata answer.
type Meta struct {
	Brokers    map[int32]string
	Controller int32
	Topics     map[string]TopicMeta
}

// ConfigValue is one entry of DescribeConfigs.
type ConfigValue struct {
	Value     string
	Source    string // as the client names it
	IsDefault bool
	ReadOnly  bool
}

// GroupMember is one consumer in a group; Assigned is its current assignment (nil while
// it has none, e.g. during a rebalance).
type GroupMember interface {
	Assigned() []int32
	Consumed() int
	// Leave closes the member (LeaveGroup).
	Leave(ctx context.Context) error
	// Err is the last error the member's client reported, if any.
	Err() string
	// CommitErrs are the failures of the commits it made when partitions were revoked.
	CommitErrs() []string
}

// ErrUnsupported marks an operation the client library cannot express.
var ErrUnsupported = errors.New("not supported by this client")

// Client is one Go Kafka client library.
type Client interface {
	Name() string
	Codecs() []string
	// NullIsEmpty: the client hands back empty values and header values as nil, so a
	// null and an empty one cannot be told apart on the consumer side.
	NullIsEmpty() bool
	Close()

	// admin
	CreateTopic(ctx context.Context, topic string, partitions int32, configs map[string]string) error
	DeleteTopics(ctx context.Context, topics []string) error
	Metadata(ctx context.Context, topics []string) (*Meta, error)
	CreatePartitions(ctx context.Context, topic string, total int32) error
	AlterConfigs(ctx context.Context, topic string, set map[string]string) error       // IncrementalAlterConfigs
	AlterConfigsLegacy(ctx context.Context, topic string, all map[string]string) error // AlterConfigs
	DescribeConfigs(ctx context.Context, topic string) (map[string]ConfigValue, error)

	// produce / consume
	Produce(ctx context.Context, topic string, recs []Rec, opts ProduceOpts) ([]Ack, error)
	Watermarks(ctx context.Context, topic string, partitions int32) (map[int32][2]int64, error)
	// ConsumeAll reads every partition from offset 0 up to ends[p] (exclusive).
	ConsumeAll(ctx context.Context, topic string, ends map[int32]int64) ([]Consumed, []string)
	// OffsetsForTimes asks ListOffsets for one timestamp per partition; the answer per
	// partition is an offset (-1 = no such record) or an error.
	OffsetsForTimes(ctx context.Context, topic string, ts map[int32]int64) (map[int32]int64, map[int32]error, error)

	// groups
	// JoinGroup starts a member that consumes in the background. With revokeCommit > 0 it
	// commits that offset for each partition taken from it, from the client's revoke hook
	// (before it rejoins: the group is rebalancing then), as consumers commonly do.
	JoinGroup(ctx context.Context, group, topic, memberName string, revokeCommit int64) (GroupMember, error)
	// ConsumeAndCommit joins group, consumes every partition of topic until it has read
	// offsets below upTo, commits upTo for every partition and leaves.
	ConsumeAndCommit(ctx context.Context, group, topic string, partitions int32, upTo int64) error
	// CommittedOffsets is OffsetFetch for the group (admin view).
	CommittedOffsets(ctx context.Context, group, topic string, partitions int32) (map[int32]int64, error)
	// Resume joins group, consumes from the committed offsets until every partition
	// reached end, and leaves without committing. Returns the offsets read per partition.
	Resume(ctx context.Context, group, topic string, partitions int32, end int64) (map[int32][]int64, error)
}
