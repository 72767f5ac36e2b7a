from ftx.cli.main import main

main()
