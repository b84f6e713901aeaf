from mechanisms.cli import main

main()
