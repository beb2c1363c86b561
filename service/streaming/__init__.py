"""Extensions of Faust for high-volume topics."""
