package slack

import "testing"

// Slack text keeps its lines; each is bot.Printable, then escaped.
func TestEscapeIsPrintablePerLine(t *testing.T) {
	in := "a <@U123> & \u202eevil\u202c\x1b[2J\nsecond line"
	if got, want := escape(in), "a &lt;@U123&gt; &amp; evil[2J\nsecond line"; got != want {
		t.Errorf("escape(%q) = %q, want %q", in, got, want)
	}
}
