from sessrec.cli import main

main()
