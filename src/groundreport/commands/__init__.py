"""One module per verb of the command line. cli.py parses options and calls ``run`` here;
these modules print to the terminal and raise ``UserError`` for the user's mistakes."""
