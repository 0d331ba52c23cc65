from pulsarjobs.cli import main

main()
