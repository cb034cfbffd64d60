package irc

import "testing"

// Every adapter sends bot.Printable text: IRC's clean also takes out
// IRC's formatting codes, and a reordering control never reaches the
// channel.
func TestCleanIsPrintable(t *testing.T) {
	in := "\x0304red\x03 subject \u202eevil\u202c\r\nPRIVMSG #ops :hi"
	if got, want := clean(in), "red subject evilPRIVMSG #ops :hi"; got != want {
		t.Errorf("clean(%q) = %q, want %q", in, got, want)
	}
}
