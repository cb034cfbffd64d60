package deployer

import "strconv"

// Verb is a chat command, named without the chat's prefix. The domain says
// what a person may do next with typed choices; the bot renders them with
// the configured prefix, so no command literal lives in this package.
type Verb string

// The verbs the pipeline suggests.
const (
	VerbVerified Verb = "verified" // typed bare, without the prefix
	VerbAbort    Verb = "abort"
	VerbPromote  Verb = "promote"
	VerbRollback Verb = "rollback"
	VerbCancel   Verb = "cancel"
	VerbUnblock  Verb = "unblock"
	VerbUnlock   Verb = "unlock"
	VerbRepool   Verb = "repool"
	VerbSync     Verb = "sync"
	VerbBackport Verb = "backport"
	VerbStatus   Verb = "status"
)

// Choice is one thing a person may do next: a command with its arguments
// and, in words, what it does ("continue to production").
type Choice struct {
	Verb  Verb     `json:"verb"`
	Args  []string `json:"args,omitempty"`
	Means string   `json:"means,omitempty"`
}

// Do returns the choice of verb with the deployment id as its argument.
func Do(verb Verb, id int64, means string) Choice {
	return Choice{Verb: verb, Args: []string{strconv.FormatInt(id, 10)}, Means: means}
}

// DoWith returns the choice of verb with the given arguments.
func DoWith(verb Verb, means string, args ...string) Choice {
	return Choice{Verb: verb, Args: args, Means: means}
}
