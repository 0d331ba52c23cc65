package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// DeadLetterSubscription is the subscription pulsarjobs keeps on dead-letter topics.
const DeadLetterSubscription = "pulsarjobs-dead-letters"

// Options say where the jobs live: the same as pulsarjobs' PULSARJOBS_* settings.
type Options struct {
	ServiceURL   string // pulsar://127.0.0.1:6650
	Token        string // a JWT, when the broker wants one
	TrustFile    string // the CA of a pulsar+ssl:// broker
	Tenant       string // public
	Namespace    string // pulsarjobs
	Subscription string // pulsarjobs: the workers' subscription
}

// Client enqueues jobs and reads dead letters.
type Client struct {
	options   Options
	pulsar    pulsar.Client
	mu        sync.Mutex
	producers map[string]pulsar.Producer
}

// Job is what to run: its type (the job's name in the Python app), queue and arguments.
type Job struct {
	Type   string
	Queue  string // "default" when empty
	Args   []Value
	Kwargs map[string]Value
	Retry  *RetryPolicy // DefaultRetry when nil
}

// NewClient connects to the broker of the options.
func NewClient(options Options) (*Client, error) {
	clientOptions := pulsar.ClientOptions{
		URL:               options.ServiceURL,
		OperationTimeout:  30 * time.Second,
		ConnectionTimeout: 10 * time.Second,
	}
	if options.Token != "" {
		clientOptions.Authentication = pulsar.NewAuthenticationToken(options.Token)
	}
	if options.TrustFile != "" {
		clientOptions.TLSTrustCertsFilePath = options.TrustFile
		clientOptions.TLSValidateHostname = true
	}
	client, err := pulsar.NewClient(clientOptions)
	if err != nil {
		return nil, fmt.Errorf("cannot use Pulsar at %s: %w", options.ServiceURL, err)
	}
	return &Client{options: options, pulsar: client, producers: map[string]pulsar.Producer{}}, nil
}

// Close flushes and closes the producers and the client.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, producer := range c.producers {
		producer.Close()
	}
	c.pulsar.Close()
}

// Topic is the full name of a topic in the namespace.
func (c *Client) Topic(name string) string {
	return fmt.Sprintf("persistent://%s/%s/%s", c.options.Tenant, c.options.Namespace, name)
}

// DeadLetterTopic is where jobs of a queue land when their retries ran out.
func (c *Client) DeadLetterTopic(queue string) string {
	return c.Topic(fmt.Sprintf("%s-%s-DLQ", queue, c.options.Subscription))
}

// Enqueue sends a job to run now (a zero `at`) or at `at`, and returns its id once the broker
// has stored it.
func (c *Client) Enqueue(ctx context.Context, job Job, at time.Time) (string, error) {
	queue := job.Queue
	if queue == "" {
		queue = "default"
	}
	retry := DefaultRetry
	if job.Retry != nil {
		retry = *job.Retry
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	envelope := &Envelope{
		ID: newID(), Type: job.Type, Queue: queue, Args: job.Args, Kwargs: job.Kwargs,
		CreatedAt: now, Attempt: 1, Retry: retry, Meta: map[string]string{},
	}
	if envelope.Args == nil {
		envelope.Args = []Value{}
	}
	if envelope.Kwargs == nil {
		envelope.Kwargs = map[string]Value{}
	}
	message := &pulsar.ProducerMessage{}
	if !at.IsZero() && at.After(now) {
		due := at.UTC().Truncate(time.Millisecond)
		envelope.Extras = &Extras{RunAt: &due}
		message.DeliverAt = due // the broker holds the job until then
	}
	payload, err := Encode(envelope)
	if err != nil {
		return "", fmt.Errorf("cannot encode job %s: %w", job.Type, err)
	}
	message.Payload = payload
	producer, err := c.producer(ctx, c.Topic(queue))
	if err != nil {
		return "", err
	}
	if _, err := producer.Send(ctx, message); err != nil {
		return "", fmt.Errorf("the broker did not store job %s on %s: %w", job.Type, queue, err)
	}
	return envelope.ID, nil
}

// producer is the producer of a queue's topic, made once. Before the first one, the workers'
// subscription is put on the topic: a topic nobody subscribes to does not keep its messages.
func (c *Client) producer(ctx context.Context, topic string) (pulsar.Producer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if producer, ok := c.producers[topic]; ok {
		return producer, nil
	}
	consumer, err := c.pulsar.Subscribe(pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            c.options.Subscription,
		Type:                        pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot put subscription %s on %s: %w", c.options.Subscription, topic, err)
	}
	consumer.Close()
	producer, err := c.pulsar.CreateProducer(pulsar.ProducerOptions{
		Topic: topic,
		// Registered as pulsarjobs registers it: workers look the writer's schema up by version.
		Schema:          pulsar.NewAvroSchema(SchemaJSON, nil),
		DisableBatching: true, // one job, one message: Shared subscriptions spread them evenly
	})
	if err != nil {
		return nil, fmt.Errorf("cannot publish to %s: %w", topic, err)
	}
	c.producers[topic] = producer
	return producer, nil
}

// DeadLetters reads up to `limit` dead letters of a queue, oldest first, without removing them;
// it stops when none comes within `wait`.
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int, wait time.Duration) ([]*Envelope, error) {
	reader, err := c.pulsar.CreateReader(pulsar.ReaderOptions{
		Topic:          c.DeadLetterTopic(queue),
		StartMessageID: pulsar.EarliestMessageID(),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", c.DeadLetterTopic(queue), err)
	}
	defer reader.Close()
	var letters []*Envelope
	for len(letters) < limit {
		waiting, cancel := context.WithTimeout(ctx, wait)
		message, err := reader.Next(waiting)
		cancel()
		if err != nil {
			break // nothing more within `wait`
		}
		envelope, err := Decode(message.Payload())
		if err != nil {
			return letters, fmt.Errorf("dead letter %v: %w", message.ID(), err)
		}
		letters = append(letters, envelope)
	}
	return letters, nil
}

// newID is a job id as pulsarjobs makes them: 32 hex digits of a random UUID.
func newID() string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(id[:])
}
