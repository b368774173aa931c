"""What a researcher reads: figures and the HTML report."""
