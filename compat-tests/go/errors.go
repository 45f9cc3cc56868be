package main

import (
	"errors"

	"github.com/IBM/sarama"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
)

// isMessageTooLarge: the broker's MESSAGE_TOO_LARGE (error code 10) as each client
// surfaces it. Every producer here keeps its own record-size limit at the client default
// (about 1 MB), so a 20000-byte record is refused by the broker, not by the client.
func isMessageTooLarge(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, kerr.MessageTooLarge) ||
		errors.Is(err, sarama.ErrMessageSizeTooLarge) ||
		errors.Is(err, kafka.MessageSizeTooLarge)
}
