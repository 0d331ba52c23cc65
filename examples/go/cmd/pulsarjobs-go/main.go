// Command pulsarjobs-go enqueues pulsarjobs jobs and reads dead letters, from Go.
//
//	pulsarjobs-go enqueue TYPE [-queue Q] [-args JSON] [-kwargs JSON] [-in 30s | -at RFC3339]
//	pulsarjobs-go dead-letters [-queue Q] [-limit N]
//
// The broker and namespace come from the PULSARJOBS_* variables pulsarjobs reads.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"pulsarjobs.example/jobs/jobs"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: pulsarjobs-go enqueue TYPE [flags] | dead-letters [flags]")
	}
	var err error
	switch os.Args[1] {
	case "enqueue":
		err = enqueue(os.Args[2:])
	case "dead-letters":
		err = deadLetters(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: enqueue or dead-letters", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func enqueue(arguments []string) error {
	flags := flag.NewFlagSet("enqueue", flag.ExitOnError)
	queue := flags.String("queue", "default", "the queue")
	args := flags.String("args", "[]", "positional arguments, a JSON list")
	kwargs := flags.String("kwargs", "{}", "keyword arguments, a JSON object")
	in := flags.Duration("in", 0, "run it in a while, e.g. 30s")
	at := flags.String("at", "", "run it at this RFC 3339 time")
	if len(arguments) == 0 || strings.HasPrefix(arguments[0], "-") {
		return fmt.Errorf("enqueue needs the job's TYPE first")
	}
	jobType := arguments[0]
	_ = flags.Parse(arguments[1:])
	job := jobs.Job{Type: jobType, Queue: *queue}
	var err error
	if job.Args, err = parseArgs(*args); err != nil {
		return fmt.Errorf("-args: %w", err)
	}
	if job.Kwargs, err = parseKwargs(*kwargs); err != nil {
		return fmt.Errorf("-kwargs: %w", err)
	}
	var due time.Time
	if *in > 0 {
		due = time.Now().Add(*in)
	}
	if *at != "" {
		if due, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("-at: %w", err)
		}
	}
	client, err := jobs.NewClient(options())
	if err != nil {
		return err
	}
	defer client.Close()
	id, err := client.Enqueue(context.Background(), job, due)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

func deadLetters(arguments []string) error {
	flags := flag.NewFlagSet("dead-letters", flag.ExitOnError)
	queue := flags.String("queue", "default", "the queue")
	limit := flags.Int("limit", 100, "read at most this many")
	wait := flags.Duration("wait", 3*time.Second, "stop when none comes within this")
	_ = flags.Parse(arguments)
	client, err := jobs.NewClient(options())
	if err != nil {
		return err
	}
	defer client.Close()
	letters, err := client.DeadLetters(context.Background(), *queue, *limit, *wait)
	if err != nil {
		return err
	}
	for _, letter := range letters { // one JSON object a line
		args := make([]any, len(letter.Args))
		for i, arg := range letter.Args {
			args[i] = arg.Plain()
		}
		line := map[string]any{"id": letter.ID, "type": letter.Type, "queue": letter.Queue,
			"args": args, "attempt": letter.Attempt}
		if failure := letter.Extra().LastError; failure != nil {
			line["error_type"] = failure.Type
			line["error"] = failure.Message
		}
		text, _ := json.Marshal(line)
		fmt.Println(string(text))
	}
	return nil
}

func options() jobs.Options {
	return jobs.Options{
		ServiceURL:   env("PULSARJOBS_SERVICE_URL", "pulsar://127.0.0.1:6650"),
		Token:        env("PULSARJOBS_TOKEN", ""),
		TrustFile:    env("PULSARJOBS_TLS_TRUST_FILE", ""),
		Tenant:       env("PULSARJOBS_TENANT", "public"),
		Namespace:    env("PULSARJOBS_NAMESPACE", "pulsarjobs"),
		Subscription: env("PULSARJOBS_SUBSCRIPTION", "pulsarjobs"),
	}
}

func parseArgs(text string) ([]jobs.Value, error) {
	var raw []any
	if err := decodeJSON(text, &raw); err != nil {
		return nil, err
	}
	values := make([]jobs.Value, len(raw))
	for i, item := range raw {
		value, err := jobs.Arg(item)
		if err != nil {
			return nil, err
		}
		values[i] = value
	}
	return values, nil
}

func parseKwargs(text string) (map[string]jobs.Value, error) {
	var raw map[string]any
	if err := decodeJSON(text, &raw); err != nil {
		return nil, err
	}
	values := make(map[string]jobs.Value, len(raw))
	for key, item := range raw {
		value, err := jobs.Arg(item)
		if err != nil {
			return nil, err
		}
		values[key] = value
	}
	return values, nil
}

// decodeJSON keeps numbers as json.Number, so that 3 is sent as an integer and 3.0 as a double.
func decodeJSON(text string, into any) error {
	decoder := json.NewDecoder(strings.NewReader(text))
	decoder.UseNumber()
	return decoder.Decode(into)
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "error: "+message)
	os.Exit(1)
}
